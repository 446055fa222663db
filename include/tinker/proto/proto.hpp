// The protobuf wire codec (docs/protocol.md §9), hand-written: no libprotobuf dependency.
//
//   encode(req) / decode_forward_backward_request(bytes)   ForwardBackwardRequest
//   encode(out) / decode_forward_backward_output(bytes)    ForwardBackwardOutput
//   encode(res) / decode_sample_response(bytes)            SampleResponse
//
// plus encoded_size(x) and encode_to(buffer, x) (appends) for each. Encoding throws
// tinker::invalid_argument for values protobuf cannot carry; decoding throws tinker::protocol_error
// naming the message, the field path and the problem.
#pragma once

#include <tinker/proto/forward_backward.hpp>
#include <tinker/proto/sample.hpp>

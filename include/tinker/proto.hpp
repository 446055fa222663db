// The protobuf wire codec (hand-written; no libprotobuf): ForwardBackwardRequest,
// ForwardBackwardOutput and SampleResponse in both directions.
#pragma once

#include <tinker/proto/proto.hpp>

// tinker-cpp: everything a client program needs (the clients, their futures, the protocol
// types). The wire codecs are separate: <tinker/json.hpp>, <tinker/proto.hpp>; the local engine
// is <tinker/local/engine.hpp>.
#pragma once

#include <tinker/blocking.hpp>
#include <tinker/byte_tokenizer.hpp>
#include <tinker/client/api_future.hpp>
#include <tinker/client/client_stats.hpp>
#include <tinker/client/completion.hpp>
#include <tinker/client/download.hpp>
#include <tinker/client/gather.hpp>
#include <tinker/client/options.hpp>
#include <tinker/client/rest_client.hpp>
#include <tinker/client/sampling_client.hpp>
#include <tinker/client/service_client.hpp>
#include <tinker/client/training_client.hpp>
#include <tinker/error.hpp>
#include <tinker/tinker_path.hpp>
#include <tinker/types.hpp>
#include <tinker/version.hpp>

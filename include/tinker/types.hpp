// All protocol value types.
#pragma once

#include <tinker/types/account.hpp>
#include <tinker/types/checkpoint.hpp>
#include <tinker/types/future.hpp>
#include <tinker/types/model_input.hpp>
#include <tinker/types/sampling.hpp>
#include <tinker/types/service.hpp>
#include <tinker/types/session.hpp>
#include <tinker/types/tensor_data.hpp>
#include <tinker/types/timestamp.hpp>
#include <tinker/types/training.hpp>
#include <tinker/types/weights.hpp>

// The local engine's model layer: a tiny byte-level language model (frozen seeded base + LoRA)
// that really trains and samples on CPU. Pure computation: no I/O, no networking.
//
//   base_model        the frozen base; default_base_models() lists the engine's models
//   trainable_model   LoRA adapter with forward_backward / optim_step / checkpoints
//   lora_weights      immutable adapter snapshot for sampling; load_lora_weights()
//   sample_batch()    batched autoregressive sampling
//   safetensors       the checkpoint tensor format
#pragma once

#include <tinker/byte_tokenizer.hpp>
#include <tinker/local/model/base_model.hpp>
#include <tinker/local/model/checkpoint.hpp>
#include <tinker/local/model/lora_weights.hpp>
#include <tinker/local/model/safetensors.hpp>
#include <tinker/local/model/sampler.hpp>
#include <tinker/local/model/trainable_model.hpp>

"""The official tinker Python SDK, unmodified, driving the local engine: our conformance check.

Run by run_official_sdk.sh (which starts tinker-local-server and puts the SDK on the path).
Every step asserts what the SDK got back, so a protocol mismatch fails here with the SDK's own
error. Usage: official_sdk_loop.py BASE_URL
"""
import asyncio
import sys
import time

import tinker
from tinker import types

BOS = 256


def datum_for(text: bytes, weight: float = 1.0) -> types.Datum:
    tokens = [BOS] + list(text)
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={"target_tokens": tokens[1:], "weights": [weight] * (len(tokens) - 1)},
    )


def mean_nll(output: types.ForwardBackwardOutput) -> float:
    logprobs = output.loss_fn_outputs[0]["logprobs"].tolist()
    return -sum(logprobs) / len(logprobs)


def main(base_url: str) -> None:
    started = time.time()
    service = tinker.ServiceClient(base_url=base_url, api_key="tml-official-sdk")
    models = [m.model_name for m in service.get_server_capabilities().supported_models]
    assert models, "no supported models"
    print("capabilities:", models)

    training = service.create_lora_training_client(base_model=models[0], rank=8, seed=3)
    info = training.get_info()
    assert info.model_data.model_name == models[0], info
    print("model:", info.model_id)

    # Supervised learning: the loss must fall. forward_backward and optim_step are enqueued back
    # to back before either result is awaited, as the SDK's docs recommend.
    text = b"the quick brown fox jumps over the lazy dog. " * 2
    batch = [datum_for(text)]
    losses = []
    for _ in range(15):
        fwd_bwd = training.forward_backward(batch, "cross_entropy")
        optim = training.optim_step(types.AdamParams(learning_rate=2e-2))
        losses.append(mean_nll(fwd_bwd.result()))
        optim.result()
    print("cross_entropy losses:", [round(x, 3) for x in losses])
    assert losses[-1] < 0.5 * losses[0], losses

    # Forward only, and the RL losses with their configs.
    forward = training.forward(batch, "cross_entropy").result()
    assert abs(mean_nll(forward) - losses[-1]) < losses[0], forward.metrics
    rl_datum = types.Datum(
        model_input=batch[0].model_input,
        loss_fn_inputs={
            "target_tokens": batch[0].loss_fn_inputs["target_tokens"],
            "logprobs": forward.loss_fn_outputs[0]["logprobs"],
            "advantages": [1.0] * batch[0].model_input.length,
        },
    )
    for loss, config in [("importance_sampling", None), ("ppo", {"clip_low_threshold": 0.8, "clip_high_threshold": 1.2}),
                         ("cispo", None)]:
        out = training.forward_backward([rl_datum], loss, config).result()
        assert all(":" in key for key in out.metrics), out.metrics
        print(f"{loss} metrics:", out.metrics)
    training.optim_step(types.AdamParams(learning_rate=1e-3)).result()

    # State: save, resume with the optimizer, and the next step matches exactly.
    state = training.save_state("official-sdk-state").result()
    print("save_state:", state.path)
    resumed = service.create_training_client_from_state_with_optimizer(state.path)
    a = training.forward_backward(batch, "cross_entropy")
    b = resumed.forward_backward(batch, "cross_entropy")
    assert mean_nll(a.result()) == mean_nll(b.result()), "resumed model differs"
    weights_only = service.create_training_client_from_state(state.path)
    print("resumed:", resumed.get_info().model_id, weights_only.get_info().model_id)

    # Sampling: a named sampler checkpoint, the shortcut client, prompt logprobs, compute_logprobs.
    sampler_path = training.save_weights_for_sampler("official-sdk-sampler").result().path
    assert sampler_path.startswith("tinker://") and "/sampler_weights/" in sampler_path, sampler_path
    sampling = training.save_weights_and_get_sampling_client()
    params = types.SamplingParams(max_tokens=12, temperature=0.0, seed=1, stop=["."])
    prompt = types.ModelInput.from_ints([BOS] + list(b"the quick"))
    result = sampling.sample(prompt=prompt, num_samples=2, sampling_params=params,
                             include_prompt_logprobs=True, topk_prompt_logprobs=2).result()
    completions = [bytes(t for t in s.tokens if t < 256) for s in result.sequences]
    print("samples:", completions, result.sequences[0].stop_reason)
    assert len(result.sequences) == 2 and all(c for c in completions), completions
    assert result.prompt_logprobs is not None and len(result.prompt_logprobs) == prompt.length
    assert result.topk_prompt_logprobs is not None
    logprobs = sampling.compute_logprobs(types.ModelInput.from_ints([BOS] + list(text[:19]))).result()
    assert len(logprobs) == 20, len(logprobs)
    from_path = service.create_sampling_client(model_path=sampler_path)
    assert from_path.sample(prompt=prompt, num_samples=1, sampling_params=params).result().sequences

    # Many samples in flight through the SDK's async API.
    async def many() -> int:
        futures = [sampling.sample_async(prompt=prompt, num_samples=1,
                                         sampling_params=types.SamplingParams(max_tokens=4, seed=i))
                   for i in range(200)]
        results = await asyncio.gather(*futures)
        return sum(len(r.sequences) for r in results)
    assert asyncio.run(many()) == 200
    print("200 concurrent samples: ok")

    # REST: runs, checkpoints, weights info, archive URL, publish/unpublish, TTL, delete, sessions.
    rest = service.create_rest_client()
    runs = rest.list_training_runs().result()
    assert any(r.training_run_id == training.model_id for r in runs.training_runs), runs
    run = rest.get_training_run(training.model_id).result()
    assert run.base_model == models[0], run
    checkpoints = [c.checkpoint_id for c in rest.list_checkpoints(training.model_id).result().checkpoints]
    assert "weights/official-sdk-state" in checkpoints and "sampler_weights/official-sdk-sampler" in checkpoints
    info = rest.get_weights_info_by_tinker_path(state.path).result()
    assert info.lora_rank == 8 and info.base_model == models[0], info
    assert rest.get_checkpoint_archive_url_from_tinker_path(state.path).result().url
    rest.publish_checkpoint_from_tinker_path(state.path).result()
    rest.unpublish_checkpoint_from_tinker_path(state.path).result()
    rest.set_checkpoint_ttl_from_tinker_path(state.path, 3600).result()
    rest.delete_checkpoint_from_tinker_path(sampler_path).result()
    remaining = [c.checkpoint_id for c in rest.list_checkpoints(training.model_id).result().checkpoints]
    assert "sampler_weights/official-sdk-sampler" not in remaining, remaining
    sessions = rest.list_sessions().result().sessions
    assert sessions, "no sessions"
    print("checkpoints:", remaining, "sessions:", len(sessions))
    print(f"OFFICIAL SDK LOOP OK ({time.time() - started:.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1])

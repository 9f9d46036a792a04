"""The benchmark returns well-formed rows (timings are never asserted: they depend on the machine)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from faceprompt.bench import epoch_cache, inference, training
from faceprompt.bench.epoch_cache import bench_epoch_cache
from faceprompt.bench.inference import bench_methods
from faceprompt.bench.timing import StandInTokenizer, parse_method_spec
from faceprompt.cli import main as cli
from faceprompt.prompts import added_parameters, build_model


def test_method_specs_carry_options():
    assert parse_method_spec("vpt-ts:batched=false,tokens=10") == ("vpt-ts", {"batched": False, "tokens": 10})
    assert parse_method_spec("coop") == ("coop", {})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_method_spec("vpt:tokens")


def test_bench_rows_cover_every_method_and_batch_size_against_zero_shot(tiny_backbones):
    tower = tiny_backbones["tiny-pe"]
    methods = ["softcpt", "vpt-ts", "vpt-ts:batched=false"]
    rows = bench_methods(tower, methods, batch_sizes=[1, 3], repeats=2, warmup=1)
    assert [(r.method, r.batch_size) for r in rows] == [
        (m, b) for b in (1, 3) for m in ["zero-shot"] + methods]
    for row in rows:
        assert row.backbone == "tiny-pe" and row.device == "cpu" and row.dtype == "fp32" and row.repeats == 2
        assert 0 < row.p25_ms <= row.median_ms <= row.p75_ms
        assert math.isclose(row.ms_per_image, row.median_ms / row.batch_size)
        assert math.isclose(row.images_per_s, 1e3 * row.batch_size / row.median_ms)
        assert row.peak_memory_mb is None  # the CPU reports none
    assert all(r.vs_zero_shot == 1.0 for r in rows if r.method == "zero-shot")
    counts = {r.method: r.added_parameters for r in rows}
    assert counts["zero-shot"] == 0
    assert counts["vpt-ts"] == counts["vpt-ts:batched=false"] == added_parameters(build_model("vpt-ts", tower))


def test_bench_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli(["bench", "--backbone", "tiny-vit", "--methods", "vpt:tokens=2", "--batch-sizes", "2",
                "--repeats", "1", "--warmup", "0", "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["method"] for r in records] == ["zero-shot", "vpt:tokens=2"]
    assert "vs_zero_shot" in capsys.readouterr().out


def test_epoch_cache_bench_reports_both_epochs(tiny_backbones):
    result = bench_epoch_cache(tiny_backbones["tiny-pe"], "softcpt:context_tokens=2,task_context_tokens=2",
                               images=8, batch_size=4)
    assert result.images == 8 and result.epoch_without_cache_s > 0 and result.epoch_with_cache_s > 0
    assert result.cache_build_s > 0
    assert math.isclose(result.speedup, result.epoch_without_cache_s / result.epoch_with_cache_s)
    with pytest.raises(ValueError, match="image path"):
        bench_epoch_cache(tiny_backbones["tiny-pe"], "vpt", images=4, batch_size=4)


def test_epoch_cache_bench_shares_one_cache_build_across_batch_sizes(tiny_backbones, tmp_path, capsys):
    results = bench_epoch_cache(tiny_backbones["tiny-pe"], "softcpt:context_tokens=2,task_context_tokens=2",
                                images=8, batch_size=[2, 8])
    assert [r.batch_size for r in results] == [2, 8]
    assert results[0].cache_build_s == results[1].cache_build_s
    out = tmp_path / "epoch.json"
    assert cli(["bench", "--backbone", "tiny-pe", "--epoch-cache", "--images", "4", "--batch-size", "2", "4",
                "--methods", "coop:context_tokens=2", "--json", str(out)]) == 0
    assert [r["batch_size"] for r in json.loads(out.read_text())] == [2, 4]
    assert "speedup" in capsys.readouterr().out


def test_stand_in_tokenizer_pads_like_a_real_one():
    tokenizer = StandInTokenizer(vocab_size=100)
    tokens = tokenizer(["a photo of a woman.", "a photo of a man."], context_length=8)
    assert tokens.shape == (2, 8) and tokens.dtype == torch.long
    assert (tokens[:, :4] == tokens[0, :4]).all()  # the same words, the same ids
    assert tokens[0, 5] == tokens[1, 5] == 99 and (tokens[:, 6:] == 0).all()  # closing id, then padding
    assert (tokenizer(["word " * 20], context_length=8)[0, -1] == 99)  # long texts are cut, still closed


def test_stand_in_tokenizer_times_random_towers_only(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli(["bench", "--backbone", "tiny-vit", "--methods", "coop:context_tokens=2", "--batch-sizes", "2",
                "--repeats", "1", "--warmup", "0", "--stand-in-tokenizer", "--json", str(out)]) == 0
    assert "stand-in tokens" in capsys.readouterr().out
    assert [r["method"] for r in json.loads(out.read_text())] == ["zero-shot", "coop:context_tokens=2"]
    with pytest.raises(ValueError, match="only for --weights random"):
        bench_methods("faceclip-tiny", ["vpt"], batch_sizes=[1], weights=None, stand_in_tokenizer=True)


# --- bad input: one clear line naming the option, before any work ---------------------------------------

def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *names: str) -> None:
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    for name in names:
        assert name in err, (name, err)


def test_method_spec_values_are_yaml_and_bad_ones_name_the_option():
    assert parse_method_spec("vpt:deep=yes,dropout=0.1,tokens=4") == ("vpt", {"deep": True, "dropout": 0.1, "tokens": 4})
    with pytest.raises(ValueError, match="'vpt:tokens=abc'.*tokens.*must be an integer"):
        parse_method_spec("vpt:tokens=abc")
    with pytest.raises(ValueError, match="unknown option 'tokenz'"):
        parse_method_spec("vpt:tokenz=3")


def test_bench_bad_method_option_fails_before_timing(capsys, monkeypatch):
    for module in (epoch_cache, inference, training):
        monkeypatch.setattr(module, "load_tower", lambda *a, **k: pytest.fail("the tower was loaded"))
    code, out, err = run_cli(capsys, "bench", "--backbone", "tiny-vit", "--methods", "vpt:tokens=abc")
    assert_one_line_error(code, err, "--methods", "vpt:tokens=abc", "tokens")
    assert out == ""


def test_bench_json_naming_a_folder_fails_before_the_table(capsys, tmp_path, monkeypatch):
    for module in (epoch_cache, inference, training):
        monkeypatch.setattr(module, "load_tower", lambda *a, **k: pytest.fail("the tower was loaded"))
    code, out, err = run_cli(capsys, "bench", "--backbone", "tiny-vit", "--methods", "coop", "--batch-sizes", "1",
                             "--repeats", "1", "--json", str(tmp_path))
    assert_one_line_error(code, err, "--json", str(tmp_path), "folder")
    assert out == ""


@pytest.mark.parametrize("content", [b"", b"\x00" * 7 + b"not safetensors at all"])
def test_bench_corrupt_weights_file_is_one_line_naming_it(capsys, tmp_path, content):
    weights = tmp_path / "open_clip_model.safetensors"
    weights.write_bytes(content)
    code, out, err = run_cli(capsys, "bench", "--backbone", "tiny-vit", "--weights", str(weights),
                             "--methods", "coop", "--batch-sizes", "1", "--repeats", "1")
    assert_one_line_error(code, err, str(weights), "tiny-vit", "Replace it")


def test_gflops_per_image_follow_what_each_method_adds_to_the_image_path(tiny_backbones):
    tower = tiny_backbones["tiny-pe"]
    methods = ["coop", "vpt:tokens=2", "vpt:tokens=20", "vpt-ts:tokens=2"]
    rows = bench_methods(tower, methods, batch_sizes=[2], repeats=1, warmup=1)
    gflops = {r.method: r.gflops_per_image for r in rows}
    assert gflops["zero-shot"] > 0
    # CoOp's context lives in cached class features: at inference it runs exactly zero-shot's operations
    assert gflops["coop"] == gflops["zero-shot"]
    # VPT lengthens the token sequence: every block costs more, and more so with more tokens
    assert gflops["zero-shot"] < gflops["vpt:tokens=2"] < gflops["vpt:tokens=20"]
    # VPT-TS runs the tower once per task (three tasks)
    assert gflops["vpt-ts:tokens=2"] > 2 * gflops["vpt:tokens=2"]


def test_count_gflops_counts_a_matrix_product_as_two_flops_per_multiply_add():
    from faceprompt.bench.timing import count_gflops

    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert count_gflops(lambda: a @ b) == 2 * 8 * 16 * 4 / 1e9


def test_fused_attention_is_counted_by_the_flop_counter_and_missed_by_the_profiler():
    from faceprompt.bench.timing import count_gflops, count_gflops_profiler

    q, k, v = (torch.randn(2, 4, 16, 8) for _ in range(3))  # batch, heads, tokens, head width
    attention = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)  # noqa: E731
    # two products of 16 x 16 x 8 multiply-adds per head (scores, then the weighted values)
    assert count_gflops(attention) == 2 * (2 * 2 * 4 * 16 * 16 * 8) / 1e9
    assert count_gflops_profiler(attention) == 0


def test_the_profiler_adds_elementwise_sums_the_flop_counter_leaves_out():
    from faceprompt.bench.timing import count_gflops, count_gflops_profiler

    layer, x = torch.nn.Linear(16, 4), torch.randn(8, 16)
    call = lambda: layer(x) + 1.0  # noqa: E731  (an addmm, then one add per output)
    with torch.no_grad():
        assert count_gflops(call) == 2 * 8 * 16 * 4 / 1e9
        assert count_gflops_profiler(call) == (2 * 8 * 16 * 4 + 8 * 4) / 1e9


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-pe"])
def test_bench_rows_give_both_flop_counts_and_the_profilers_is_the_smaller(tiny_backbones, name):
    rows = bench_methods(tiny_backbones[name], ["coop", "vpt:tokens=4"], batch_sizes=[2], repeats=1, warmup=0)
    for row in rows:
        # attention (missed by the profiler) outweighs the residual adds and scalings (missed by the counter)
        assert 0 < row.gflops_per_image_profiler < row.gflops_per_image, row
    profiled = {r.method: r.gflops_per_image_profiler for r in rows}
    assert profiled["coop"] == profiled["zero-shot"] < profiled["vpt:tokens=4"]


def test_bench_prints_achieved_tflops_and_share_of_the_given_peak(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli(["bench", "--backbone", "tiny-pe", "--methods", "vpt", "--batch-sizes", "2", "--repeats", "1",
                "--warmup", "0", "--peak-tflops", "2.5", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tflops" in printed and "peak_share" in printed and "gflops_per_image_profiler" in printed
    for record in json.loads(out.read_text()):
        assert record["compile"] == "off" and 0 < record["gflops_per_image_profiler"] < record["gflops_per_image"]
        assert math.isclose(record["tflops"], record["gflops_per_image"] * record["images_per_s"] / 1e3)
        assert math.isclose(record["peak_share"], record["tflops"] / 2.5)


def test_peak_is_unknown_on_a_cpu_unless_given():
    from faceprompt.bench.timing import PEAK_TFLOPS, achieved, peak_tflops

    assert peak_tflops(torch.device("cpu"), "bf16") is None
    assert peak_tflops(torch.device("cpu"), "bf16", 1.0) == 1.0
    assert PEAK_TFLOPS["H200"]["bf16"] == 989.0
    assert achieved(None, 10.0, 1.0) == (None, None)
    assert achieved(2.0, 500.0, None) == (1.0, None)


def test_training_bench_times_each_method_against_the_bare_tower(tmp_path, capsys):
    out = tmp_path / "train.json"
    assert cli(["bench", "--train", "--backbone", "tiny-vit", "--methods", "vpt", "vpt:deep=true", "coop",
                "--batch-size", "2", "3", "--repeats", "1", "--warmup", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for column in ("images_per_s", "vs_tower", "tflops", "peak_share", "peak_memory_mb", "peak_rss_mb"):
        assert column in printed
    records = json.loads(out.read_text())
    assert [(r["method"], r["batch_size"]) for r in records] == [
        (m, b) for b in (2, 3) for m in ("tower", "vpt", "vpt:deep=true", "coop")]
    for r in records:
        assert r["images_per_s"] > 0 and r["gflops_per_image"] > 0 and r["peak_rss_mb"] > 0
        assert r["peak_memory_mb"] is None and r["peak_share"] is None  # a CPU: no peak given, no CUDA memory
    tower = {r["batch_size"]: r for r in records if r["method"] == "tower"}
    vpt = {r["batch_size"]: r for r in records if r["method"] == "vpt"}
    assert all(tower[b]["vs_tower"] == 1.0 for b in tower)
    assert all(vpt[b]["gflops_per_image"] > tower[b]["gflops_per_image"] for b in vpt)  # ten more tokens


def test_training_bench_leaves_the_tower_frozen(tiny_backbones):
    from faceprompt.bench.training import bench_training

    tower = tiny_backbones["tiny-pe"]
    before = {n: p.clone() for n, p in tower.named_parameters()}
    rows = bench_training(tower, ["vpt"], [2], repeats=1, warmup=0)
    assert [r.method for r in rows] == ["tower", "vpt"]
    assert all(torch.equal(p, before[n]) for n, p in tower.named_parameters())  # the tower stays frozen
    assert all(p.grad is None for p in tower.parameters())


def test_bench_dry_run_checks_the_options_and_loads_nothing(capsys, monkeypatch):
    for module in (epoch_cache, inference, training):
        monkeypatch.setattr(module, "load_tower", lambda *a, **k: pytest.fail("a dry run loaded a tower"))
    assert cli(["bench", "--backbone", "pe-core-l14-336", "--device", "cuda", "--train", "--methods", "vpt",
                "--compile", "--dry-run"]) == 0
    assert "would time training steps of pe-core-l14-336 on cuda (fp32, compile default): vpt" in capsys.readouterr().out
    assert cli(["bench", "--backbone", "no-such-tower", "--dry-run"]) != 0


@pytest.mark.slow
def test_compiled_bench_reports_its_mode(tmp_path):
    out = tmp_path / "bench.json"
    assert cli(["bench", "--backbone", "tiny-vit", "--methods", "vpt", "--batch-sizes", "2", "--repeats", "1",
                "--compile", "--json", str(out)]) == 0
    assert {r["compile"] for r in json.loads(out.read_text())} == {"default"}

"""The nightly scheduler: one-GPU cases spread over GPUs in parallel, multi-GPU cases on all of them."""

import subprocess
import sys

from harness.nightly import Shard, devices_of, plan
from harness.settings import REPO_ROOT

IDS = [
    "benchmarks/test_fastvit.py::test_fastvit[fastvit_t8-kvasir-lightning-32true-1dev-pretrained]",
    "benchmarks/test_fastvit.py::test_fastvit[fastvit_t8-kvasir-lightning-bf16-1dev-pretrained]",
    "benchmarks/test_fastvit.py::test_fastvit[fastvit_t8-kvasir-lightning-bf16-2dev-pretrained]",
    "benchmarks/test_fastvit.py::test_fastvit[fastvit_t8-kvasir-lightning-bf16-8dev-pretrained]",
    "benchmarks/test_efficientnetv2.py::test_efficientnetv2[tf_efficientnetv2_b2-imagefolder-poutyne-fp16-1dev-random]",
    "benchmarks/test_engine_parity.py::test_engine_parity[fastvit_t8]",
]


def test_devices_are_read_from_readable_ids():
    assert [devices_of(i) for i in IDS] == [1, 1, 2, 8, 1, 1]


def test_single_gpu_cases_round_robin_then_multi_gpu_on_all():
    first, second = plan(IDS, gpus=2)
    assert first == [Shard((0,), (IDS[0], IDS[4])), Shard((1,), (IDS[1], IDS[5]))]
    assert second == [Shard((0, 1), (IDS[2], IDS[3]))]
    assert {i for phase in (first, second) for shard in phase for i in shard.node_ids} == set(IDS)  # each case once


def test_more_gpus_than_cases_leaves_no_empty_shard():
    (phase,) = plan(IDS[:2], gpus=8)
    assert [s.gpus for s in phase] == [(0,), (1,)]


def test_without_gpu_it_says_so_and_plans_the_smoke_profile():
    done = subprocess.run([sys.executable, "-m", "harness", "nightly", "--dry-run"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0
    assert "no GPU on this machine; running the smoke profile instead" in done.stdout
    assert "--profile smoke" in done.stdout and "benchmark-cpu.json" in done.stdout

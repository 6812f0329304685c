"""The precision x devices matrix: what runs where, and the reason for every skip."""

import pytest

from harness.hardware import Hardware, skip_reason

CPU2 = Hardware(gpus=0, gpu_name=None, gpu_bf16=False, cpu_cores=2)
H200x8 = Hardware(gpus=8, gpu_name="NVIDIA H200", gpu_bf16=True, cpu_cores=64)
T4 = Hardware(gpus=1, gpu_name="Tesla T4", gpu_bf16=False, cpu_cores=8)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("devices", [1, 2])
def test_cpu_runs_fp32_and_bf16_on_one_and_two_lightning_processes(precision, devices):
    assert skip_reason("lightning", precision, devices, CPU2) is None


def test_cpu_skips_with_reasons():
    assert "needs a CUDA GPU" in skip_reason("lightning", "16-mixed", 1, CPU2)
    assert "4 CPU processes need 4 cores; this machine has 2" in skip_reason("lightning", "32-true", 4, CPU2)
    assert "Poutyne runs several devices only as a list of GPUs" in skip_reason("poutyne", "32-true", 2, CPU2)
    assert skip_reason("poutyne", "bf16-mixed", 1, CPU2) is None
    assert "2 CPU processes need 2 cores" not in (skip_reason("lightning", "32-true", 1, CPU2, num_nodes=2) or "")


def test_gpu_machine_runs_everything_up_to_its_gpu_count():
    for engine in ("poutyne", "lightning"):
        for precision in ("32-true", "16-mixed", "bf16-mixed"):
            for devices in (1, 2, 4, 8):
                assert skip_reason(engine, precision, devices, H200x8) is None
    assert "needs 2 GPUs; this machine has 1" in skip_reason("lightning", "32-true", 2, T4)
    assert "Tesla T4 has none" in skip_reason("lightning", "bf16-mixed", 1, T4)


def test_benchmarks_leave_out_emulated_bf16_but_runs_allow_it():
    from harness.hardware import benchmark_skip_reason

    assert skip_reason("lightning", "bf16-mixed", 2, CPU2) is None  # a run may use it
    assert "emulated" in benchmark_skip_reason("lightning", "bf16-mixed", 1, CPU2)
    native = Hardware(gpus=0, gpu_name=None, gpu_bf16=False, cpu_cores=8, cpu_bf16=True)
    assert benchmark_skip_reason("lightning", "bf16-mixed", 2, native) is None
    assert benchmark_skip_reason("poutyne", "bf16-mixed", 1, H200x8) is None

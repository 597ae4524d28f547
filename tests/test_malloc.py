"""engine.tune_malloc: freed activations stay in the heap, so training steps stop faulting in fresh pages."""
import subprocess
import sys

import pytest

CHILD = r"""
import resource, sys, torch
from transferlearn.engine import tune_malloc
from transferlearn.models import create_model
if sys.argv[1] == "1":
    assert tune_malloc() is True
torch.manual_seed(0)
torch.set_num_threads(1)
m = create_model("mobilenet_v2", 2, weights="none")
opt = torch.optim.SGD(m.parameters(), lr=0.01)
x, y = torch.randn(16, 3, 128, 128), torch.tensor([0, 1] * 8)
def step():
    loss = torch.nn.functional.cross_entropy(m(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(4):
    step()
per = []  # faults of each of 8 steps
for _ in range(8):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    per.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(sum(per))
"""


@pytest.mark.timing
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tune_malloc_cuts_page_faults_per_training_step():
    def faults_in_8_steps(tuned):
        out = subprocess.run([sys.executable, "-c", CHILD, "1" if tuned else "0"], capture_output=True, text=True,
                             check=True).stdout
        return int(out.strip().splitlines()[-1])
    # the least of two processes each: when tuned, the odd step still grows the heap (thousands of faults)
    default = min(faults_in_8_steps(False) for _ in range(2))
    tuned = min(faults_in_8_steps(True) for _ in range(2))
    assert default > 20000, default  # glibc's default: activations come from fresh zero-filled pages every step
    assert tuned * 3 < default, (default, tuned)

"""engine.tune_malloc: freed activations stay in the heap, so later steps stop faulting in fresh pages."""
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
m = create_model("mobilenet_v2", 2, weights="none")
opt = torch.optim.SGD(m.parameters(), lr=0.01)
x, y = torch.randn(8, 3, 96, 96), torch.tensor([0, 1] * 4)
def step():
    loss = torch.nn.functional.cross_entropy(m(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
step(); step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) // 5)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tune_malloc_cuts_page_faults_per_training_step():
    def faults_per_step(tuned):
        out = subprocess.run([sys.executable, "-c", CHILD, "1" if tuned else "0"], capture_output=True, text=True,
                             check=True).stdout
        return int(out.strip().splitlines()[-1])
    default, tuned = faults_per_step(False), faults_per_step(True)
    assert default > 1000  # glibc's default: activations come from fresh, zero-filled pages every step
    assert tuned * 2 < default, (default, tuned)

"""A fault in peft's merge, injected into the export stage's processes by the tests (never by product
code): on PYTHONPATH, with FTMODEL_TEST_MERGE_FAULT set, `merge_and_unload` goes wrong on purpose.

- `unload`: return the base model with the adapter dropped (a merge that changes nothing);
- `perturb`: merge, then disturb the first decoder layer's weights (a merge that changes it differently).
"""

import os

FAULT = os.environ.get("FTMODEL_TEST_MERGE_FAULT")

if FAULT:
    from peft.tuners.tuners_utils import BaseTuner

    real_merge = BaseTuner.merge_and_unload

    def faulty_merge(self, *args, **kwargs):
        if FAULT == "unload":
            return self.unload()
        merged = real_merge(self, *args, **kwargs)
        import torch

        gen = torch.Generator().manual_seed(0)
        for name, param in merged.named_parameters():
            if ".layers.0." in name and param.dim() == 2:
                param.data += 0.2 * torch.randn(param.shape, generator=gen, dtype=param.dtype).to(param.device)
        return merged

    BaseTuner.merge_and_unload = faulty_merge

"""A fault in peft's merge, injected into the export stage's processes by the tests (never by product
code): on PYTHONPATH, with FTMODEL_TEST_MERGE_FAULT set, `merge_and_unload` goes wrong on purpose.

- `noop`: the adapter's weights are lost before the merge (LoRA B zeroed, the trained copies of
  `modules_to_save` reset to the originals), so the merged model is the base model — the trap of
  merges that silently drop the adapter. (peft's own `unload()` is no such fault: it keeps the
  trained copy of a module in `modules_to_save`.)
- `perturb`: merge, then disturb the first decoder layer's weights (a merge that changes it differently).
"""

import os

FAULT = os.environ.get("FTMODEL_TEST_MERGE_FAULT")

if FAULT:
    from peft.tuners.tuners_utils import BaseTuner

    real_merge = BaseTuner.merge_and_unload

    def faulty_merge(self, *args, **kwargs):
        import torch
        from peft.utils import ModulesToSaveWrapper

        if FAULT == "noop":
            with torch.no_grad():
                for module in self.model.modules():
                    if isinstance(module, ModulesToSaveWrapper):
                        for trained in module.modules_to_save.values():
                            trained.load_state_dict(module.original_module.state_dict())
                for name, param in self.model.named_parameters():
                    if "lora_B" in name:
                        param.zero_()
            return real_merge(self, *args, **kwargs)
        merged = real_merge(self, *args, **kwargs)
        gen = torch.Generator().manual_seed(0)
        for name, param in merged.named_parameters():
            if ".layers.0." in name and param.dim() == 2:
                param.data += 0.2 * torch.randn(param.shape, generator=gen, dtype=param.dtype).to(param.device)
        return merged

    BaseTuner.merge_and_unload = faulty_merge

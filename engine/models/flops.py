"""FLOPs of a model's forward pass, counted by torch: the dry run prints them per image, the bench's
ceiling divides a device's rate by them."""

from __future__ import annotations


def forward_flops(model, shape: tuple[int, ...], batch: int = 2) -> int:
    """FLOPs of one forward of one image through `model` (eval mode, no gradients, on the CPU in fp32):
    torch's FlopCounterMode over a batch of `batch` images, divided by it. A multiply-add counts two."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        x = torch.zeros((batch, *shape), device=next(model.parameters()).device)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
        return counter.get_total_flops() // batch
    finally:
        model.train(was_training)

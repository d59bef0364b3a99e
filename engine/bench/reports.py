"""The bench's third way, the reports' pipeline: a CIFAR-style dataset making one PIL image per item,
through RandomCrop(size, padding=4), RandomHorizontalFlip, ToTensor and Normalize, in a DataLoader
with 0 and with 2 worker processes, in fp32."""

from __future__ import annotations

import time

from engine.bench.measure import build, sync
from engine.experiment.config import Experiment

REPORTS_WORKERS = (0, 2)


class PILImages:
    """torchvision's CIFAR10 dataset without its files: uint8 images held as one (N, H, W, C) array,
    each item made a PIL image and put through the transform, as the reports' pipelines do. A plain
    map-style dataset (len and getitem): DataLoader asks no more."""

    def __init__(self, images, labels, transform):
        from PIL import Image

        hwc = images.permute(0, 2, 3, 1)
        self.data = (hwc[..., 0] if hwc.shape[-1] == 1 else hwc).contiguous().numpy()
        self.targets = [int(v) for v in labels]
        self.transform = transform
        self._to_pil = Image.fromarray

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.transform(self._to_pil(self.data[i])), self.targets[i]


def reports_transform(size: int, mean, std):
    """The reports' per-image augmentation (report 001 and 004's listings): PIL in, tensor out."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.RandomCrop(size, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


class ReportsPipeline:
    """The reports' way: PIL transforms per image in a DataLoader, fp32, the model in its default
    layout. One model serves every worker count."""

    def __init__(self, exp: Experiment, device, images, labels, mean, std, classes: int):
        from engine.compute.device import Runtime

        self.exp = exp
        self.rt = Runtime(device, "fp32", False)
        channels, size = images.shape[1], images.shape[-1]
        # The same step as the engine's: only the data path differs.
        self.train_step = build(exp, self.rt, classes, channels, size)
        self.model = self.train_step.model
        self.dataset = PILImages(images, labels, reports_transform(size, mean, std))
        self.warm = False

    def loader(self, workers: int):
        from torch.utils.data import DataLoader

        return DataLoader(
            self.dataset,
            batch_size=self.exp.train.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            pin_memory=self.rt.device.type == "cuda",
        )

    def measure(self, steps: int, warmup: int, workers: int) -> float:
        """Images per second over `steps` steps. Each measure starts a new epoch: with workers, one
        untimed step lets them start; `warmup` untimed steps the first time the model trains."""
        device = self.rt.device
        batches = iter(self.loader(workers))
        for _ in range((1 if workers else 0) if self.warm else max(warmup, 1)):
            self._step(next(batches))
        self.warm = True
        sync(device)
        t0 = time.perf_counter()
        seen = 0
        for _ in range(steps):
            seen += self._step(next(batches))
        sync(device)
        seconds = time.perf_counter() - t0
        del batches  # shuts the workers down before the next way runs
        return seen / seconds

    def _step(self, batch) -> int:
        x, y = batch
        device = self.rt.device
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        self.train_step(x, y)
        return len(y)

"""The seed notebook (shared/seed/000_7efe1b7ea6d8349f.txt), faithfully, without torchvision.

This is the yardstick vaekit is measured against, for both correctness (same
model and loss) and speed (its per-item pipeline). The model, loss and loop are
the notebook's code; only torchvision's `datasets.MNIST` + `ToTensor` are
re-created: per item, the uint8 array becomes a PIL image, then a float tensor
scaled by 1/255 and flattened, batched by a shuffling DataLoader.

    python -m vaekit.bench.seed_reference --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from vaekit.data import DATASETS, find_files, read_idx

input_dim = 28 * 28
hidden_dim = 400
latent_dim = 2
batch_size = 128
epochs = 10
lr = 1e-3


class SeedMNIST(Dataset):
    """torchvision's MNIST + Compose([ToTensor(), Lambda(view(-1))]), item by item."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.data = torch.from_numpy(images)
        self.targets = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.data[index].numpy(), mode="L")
        # ToTensor: HWC uint8 -> CHW float / 255
        tensor = torch.from_numpy(np.array(img, np.uint8, copy=True))
        tensor = tensor.view(img.size[1], img.size[0], 1).permute(2, 0, 1).contiguous()
        tensor = tensor.to(dtype=torch.get_default_dtype()).div(255)
        return tensor.view(-1), int(self.targets[index])


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.fc_mu = nn.Linear(hidden_dim, latent_dim)
        self.fc_logvar = nn.Linear(hidden_dim, latent_dim)
        self.fc3 = nn.Linear(latent_dim, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, input_dim)

    def encode(self, x):
        h = torch.relu(self.fc1(x))
        mu = self.fc_mu(h)
        logvar = self.fc_logvar(h)
        return mu, logvar

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h = torch.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h))

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    BCE = nn.functional.binary_cross_entropy(recon_x, x, reduction="sum")
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


def seed_dataset(
    data_dir: str | None = None, split: str = "train", limit: int | None = None
) -> SeedMNIST:
    """The split as the notebook's dataset; `limit` keeps the first N items (quick benchmarks)."""
    spec = DATASETS["mnist"]
    files = find_files(spec, data_dir)
    if files is None:
        raise SystemExit(f"MNIST not found under {data_dir}")
    image_spec, label_spec = spec.splits[split]
    images, labels = read_idx(files[image_spec.name]), read_idx(files[label_spec.name])
    return SeedMNIST(images[:limit], labels[:limit])


def run(
    data_dir: str | None,
    n_epochs: int = epochs,
    seed: int | None = None,
    log=print,
    limit: int | None = None,
):
    """The notebook's training cell; returns (per-sample losses, seconds per epoch)."""
    if seed is not None:
        torch.manual_seed(seed)
    train_dataset = seed_dataset(data_dir, limit=limit)
    train_loader = DataLoader(train_dataset, batch_size=batch_size, shuffle=True)
    model = VAE()
    optimizer = optim.Adam(model.parameters(), lr=lr)
    losses, seconds = [], []
    for epoch in range(n_epochs):
        started = time.perf_counter()
        model.train()
        train_loss = 0
        for batch_idx, (data, _) in enumerate(train_loader):  # noqa: B007  (the seed's loop)
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(data)
            loss = loss_function(recon_batch, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        seconds.append(time.perf_counter() - started)
        losses.append(train_loss / len(train_loader.dataset))
        log(f"Epoch {epoch + 1}, Loss: {train_loss / len(train_loader.dataset):.4f}")
    return losses, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    losses, seconds = run(args.data_dir, args.epochs, args.seed)
    print(f"final loss {losses[-1]:.4f}; median {sorted(seconds)[len(seconds) // 2]:.2f} s/epoch")


if __name__ == "__main__":
    main()

"""The GMM sampler: EM recovers a known mixture, and `vaekit sample --sampler gmm` runs."""

from __future__ import annotations

import torch

from vaekit.gmm import fit_gmm
from vaekit.priors import mixture_sample


def test_em_recovers_the_means_and_weights_of_a_known_mixture():
    means = torch.tensor([[-4.0, 0.0], [3.0, 3.0], [2.0, -4.0]])
    logvars = torch.tensor([[-1.0, -0.5], [0.0, -1.0], [-0.5, 0.0]])
    weights = torch.tensor([0.5, 0.3, 0.2])
    x = mixture_sample(means, logvars, 6000, torch.Generator().manual_seed(0), weights)
    fitted = fit_gmm(x, 3, steps=200, seed=1)
    order = fitted.means[:, 0].argsort()  # the components in the truth's order: -4, 2, 3
    truth = torch.tensor([0, 2, 1])
    torch.testing.assert_close(fitted.means[order].float(), means[truth], atol=0.1, rtol=0)
    torch.testing.assert_close(fitted.weights[order].float(), weights[truth], atol=0.03, rtol=0)
    torch.testing.assert_close(fitted.logvars[order].float(), logvars[truth], atol=0.15, rtol=0)
    draws = fitted.sample(100, torch.Generator().manual_seed(2))
    assert draws.shape == (100, 2)


def test_sample_command_with_the_gmm_sampler(small_config, tmp_path, mnist_dir):
    from vaekit import api
    from vaekit.cli import main

    small_config.data.limit, small_config.train.epochs = 500, 1
    run = api.train(small_config, tmp_path / "run", log=lambda _: None, progress=False)
    out = tmp_path / "g.png"
    argv = ["sample", str(run), "--sampler", "gmm", "--components", "3", "-n", "8", "-o", str(out)]
    assert main([*argv, "--device", "cpu", "--data-dir", str(mnist_dir)]) == 0
    assert out.is_file()

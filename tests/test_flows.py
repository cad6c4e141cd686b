"""Flows on q(z|x): each step's log-determinant against autograd's Jacobian, the MADE
mask's autoregressive structure, and models with a flow through the estimate."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from vaekit.config import model_config
from vaekit.evaluation.estimate import latent_statistics, posterior_points
from vaekit.flows import made_masks, planar
from vaekit.models import build_model
from vaekit.models.latent import IAF, IAFStep, PlanarFlow
from vaekit.objectives import gaussian_log_prob, latent_log_ratio


@pytest.fixture(autouse=True)
def _double():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _log_abs_det(f, z: torch.Tensor) -> torch.Tensor:
    return torch.linalg.slogdet(jacobian(f, z))[1]


def test_planar_log_det_matches_autograd():
    g = torch.Generator().manual_seed(0)
    u, w, z = (torch.randn(4, generator=g) for _ in range(3))
    b = torch.tensor(0.3)
    _, log_det = planar(z, u, w, b)
    torch.testing.assert_close(log_det, _log_abs_det(lambda v: planar(v, u, w, b)[0], z))


@pytest.mark.parametrize("module", [PlanarFlow, IAF])
def test_flow_modules_log_det_matches_autograd(module):
    torch.manual_seed(1)
    flow = module(3, 5, 3)
    z, context = torch.randn(3), torch.randn(5)
    _, log_det = flow(z, context)
    torch.testing.assert_close(log_det, _log_abs_det(lambda v: flow(v, context)[0], z))


def test_iaf_step_jacobian_is_lower_triangular_with_sigma_on_the_diagonal():
    torch.manual_seed(2)
    step = IAFStep(5, 4, 20)
    z, context = torch.randn(5), torch.randn(4)
    jac = jacobian(lambda v: step(v, context)[0], z)
    assert torch.count_nonzero(jac.triu(1)) == 0
    assert torch.count_nonzero(jac.tril(-1)) > 0  # the units do depend on earlier ones
    _, log_det = step(z, context)
    torch.testing.assert_close(jac.diagonal().log().sum(), log_det)
    first, second = made_masks(5, 20)
    assert torch.count_nonzero((second @ first).triu()) == 0  # output d sees inputs < d only


@pytest.mark.parametrize("flow", ["planar", "iaf"])
def test_model_with_a_flow_scores_log_q_with_the_log_det(flow):
    torch.manual_seed(0)
    config = model_config("iwae-1l", flow=flow, flow_steps=2, latent_dim=3, hidden_dim=16)
    model = build_model(config, (1, 28, 28))
    x = torch.rand(4, 1, 28, 28)
    noise = model.noise(4, 6)
    out = model(x, noise=noise, k=6)
    latent = out.latents[0]
    mu, logvar, h = model.encode_context(x)
    z0 = mu[:, None] + noise * torch.exp(0.5 * logvar[:, None])
    z, log_det = model.flow(z0, h[:, None])
    torch.testing.assert_close(latent.z, z)
    torch.testing.assert_close(
        latent.log_q, gaussian_log_prob(z0, mu[:, None], logvar[:, None]) - log_det
    )
    assert latent_log_ratio(latent).shape == (4, 6)


@pytest.mark.parametrize(
    ("family", "flow"), [("iwae-1l", "planar"), ("iwae-1l", "iaf"), ("mlp", "iaf")]
)
def test_reconstruct_and_posterior_points_decode_the_flowed_mean(family, flow):
    # The decoder was trained on z_T: a reconstruction (and the GMM sampler's fit, the
    # plots, the explorer's map) must read the mean through the flow, not the encoder's mu.
    torch.manual_seed(0)
    config = model_config(family, flow=flow, flow_steps=2, latent_dim=3, hidden_dim=16)
    model = build_model(config, (1, 28, 28))
    x = torch.rand(4, 1, 28, 28)
    mu, _, h = model.encode_context(x)
    z_t = model.flow(mu, h)[0]
    torch.testing.assert_close(model.posterior_point(x), z_t)
    torch.testing.assert_close(
        posterior_points(model, x, batch_size=3).double(), z_t.float().double()
    )
    torch.testing.assert_close(model.reconstruct(x), model.decode(z_t))
    assert not torch.allclose(model.reconstruct(x), model.decode(mu))
    zeros = torch.zeros_like(model.noise(4))
    torch.testing.assert_close(model(x, noise=zeros).latents[0].z, z_t)  # eps = 0: the same


def test_posterior_point_without_a_flow_is_the_encoders_mean():
    torch.manual_seed(0)
    model = build_model(model_config("iwae-1l", latent_dim=3, hidden_dim=16), (1, 28, 28))
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(model.posterior_point(x), model.encode(x)[0])


@pytest.mark.parametrize("flow", ["none", "iaf"])
def test_active_units_read_the_code_the_decoder_reads(flow):
    # Burda et al.'s Cov_x(E_q[z_u]) of the z the decoder takes: z_T at eps = 0 with a flow.
    torch.manual_seed(0)
    config = model_config("iwae-1l", flow=flow, flow_steps=2, latent_dim=3, hidden_dim=16)
    model = build_model(config, (1, 28, 28)).eval()
    x = torch.rand(5, 1, 28, 28)
    means, _, sizes = latent_statistics(model, x, batch_size=2)
    assert sizes == [3]
    torch.testing.assert_close(means.double(), posterior_points(model, x).double())
    if flow == "none":
        torch.testing.assert_close(means.double(), model.encode(x)[0].float().double())

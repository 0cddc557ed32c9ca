"""A researcher's own objective, defined here and nowhere in the package, through every part.

`tapered` is TOPR-style tapered REINFORCE with a knob: positives weighted 1,
negatives by the truncated importance weight `min(rho, alpha)`. It is
registered with its closed form and then checked, drawn, trained by both
drivers, swept over `alpha` and run through the Tunix adapter by name, as the
shipped objectives are; a config also names it `"test_objectives:tapered"`,
imported on use in a fresh process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from real_jax import grad_analysis as ga
from real_jax import losses
from real_jax import palette
from real_jax.grad_analysis import _figures as ga_figures
from real_jax.losses import _registry
from real_jax.training import config as config_lib
from real_jax.training import loop
from real_jax.training import metrics
from real_jax.training import scan
from real_jax.training import sweep

QUIET = dict(log=lambda _: None)
NAME = "tapered_test"


def _advantages(mask, rewards):
  return jax.vmap(losses.group_advantages)(rewards, jnp.any(mask, -1))[..., None]


def _weight(logp, old_logp, a, alpha):
  return jnp.where(a > 0, 1.0, jnp.minimum(jnp.exp(logp - old_logp), alpha))


def tapered(logp, old_logp, mask, rewards, *, alpha: float = 1.0):
  a = _advantages(mask, rewards)
  w = jax.lax.stop_gradient(_weight(logp, old_logp, a, alpha))
  token = -w * a * jnp.where(mask, logp, 0.0)
  return jnp.sum(jnp.where(mask, token, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def tapered_weights(logp, old_logp, mask, rewards, *, alpha: float = 1.0):
  a = _advantages(mask, rewards)
  return jnp.where(mask, -_weight(logp, old_logp, a, alpha) * a, 0.0) / jnp.maximum(
      jnp.sum(mask), 1)


def _numpy_loss(logp, old_logp, mask, rewards, alpha):
  """The same loss in NumPy, group by group (GRPO's advantages, ddof = 1)."""
  total = 0.0
  for b in range(rewards.shape[0]):
    present = mask[b].any(-1)
    r = rewards[b][present]
    adv = np.zeros(rewards.shape[1])
    adv[present] = (r - r.mean()) / (r.std(ddof=1) + 1e-6) if r.size > 1 else 0.0
    for k in range(rewards.shape[1]):
      m = mask[b, k]
      w = 1.0 if adv[k] > 0 else np.minimum(np.exp(logp[b, k][m] - old_logp[b, k][m]), alpha)
      total += np.sum(-w * adv[k] * logp[b, k][m])
  return total / max(mask.sum(), 1)


@pytest.fixture
def registered(monkeypatch):
  """`tapered` registered for one test, and gone after it."""
  monkeypatch.setattr(_registry, "_SPECS", dict(_registry._SPECS))
  monkeypatch.setitem(losses.LOSSES, NAME, None)
  losses.register(NAME, tapered, weights=tapered_weights, edges=())
  yield NAME


class TestRegistration:

  def test_the_registry_reads_its_signature_and_calls_it_as_ours(self, registered):
    assert losses.hyperparameters(registered) == ("alpha",)
    assert losses.defaults(registered) == {"alpha": 1.0}
    rng = np.random.default_rng(0)
    logp = -rng.uniform(0.1, 2.0, (3, 4, 5))
    old = logp + rng.normal(0.0, 0.3, logp.shape)
    mask = np.arange(5)[None, None, :] < rng.integers(1, 6, (3, 4))[..., None]
    rewards = np.array([[1, 0, 0, 1], [0, 1, 1, 1], [0, 0, 0, 0]], np.float32)
    value, aux = losses.get(registered)(*map(jnp.asarray, (logp, old, mask, rewards)), alpha=0.9)
    assert aux is None  # a scalar loss comes back as (loss, None), as the trainer reads it
    np.testing.assert_allclose(float(value), _numpy_loss(logp, old, mask, rewards, 0.9),
                               rtol=1e-5)

  def test_bad_registrations(self, registered):
    with pytest.raises(ValueError, match="'grpo' is already registered"):
      losses.register("grpo", tapered)
    with pytest.raises(ValueError, match="replace=True"):
      losses.register(registered, tapered)
    losses.register(registered, tapered, replace=True)
    with pytest.raises(TypeError, match="`fn` must be callable"):
      losses.register("x_test", 3)
    with pytest.raises(TypeError, match="logp, old_logp, mask, rewards"):
      losses.register("x_test", lambda logp, *, alpha=1.0: logp)
    with pytest.raises(ValueError, match="cannot import 'nope' from 'test_objectives'"):
      losses.get("test_objectives:nope")


  def test_its_label_and_colour_reach_every_figure(self, registered, monkeypatch):
    # Registered without either: its name, and a colour no shipped objective has.
    assert ga_figures._label(registered) == registered
    assigned = palette.color(registered)
    assert assigned == palette.RESERVE[0] and assigned not in palette.COLORS.values()
    losses.register(registered, tapered, label="Tapered", color="#123456", replace=True)
    assert (ga_figures._label(registered), palette.color(registered)) == ("Tapered", "#123456")
    # A second one without a colour gets the next free one; an unknown name none.
    monkeypatch.setitem(losses.LOSSES, "x_second", None)  # gone after the test, as `registered`
    losses.register("x_second", tapered)
    assert palette.color("x_second") == palette.RESERVE[0]
    losses.register(registered, tapered, replace=True)
    assert palette.color("x_second") == palette.RESERVE[1]
    assert palette.color("x_unknown") is None and palette.color("x_unknown", "k") == "k"
    with pytest.raises(TypeError, match="`color` must be a str"):
      losses.register("x_third", tapered, color=(0, 0, 1))
    # Imported on use, a function's `label` and `color` attributes come along.
    tapered.label, tapered.color = "Tapered!", "#654321"
    try:
      name = "test_objectives:tapered"
      monkeypatch.setitem(losses.LOSSES, name, None)
      assert (ga_figures._label(name), palette.color(name)) == ("Tapered!", "#654321")
    finally:
      del tapered.label, tapered.color


class TestChecked:

  def test_by_name_against_its_closed_form(self, registered):
    report = ga.check_objective(registered, cases=256, dtypes=("float32",), progress=None,
                                alpha=0.8)
    assert report.passed
    for sign in ("positive", "negative"):
      assert report.table[sign]["float32"]["cases"] > 100
    # The negatives' weight is capped at alpha: the probe never exceeds it.
    assert np.max(report.curves["negative"][1]) <= 0.8 * (1 + 1e-5)

  def test_a_wrong_closed_form_fails(self, monkeypatch):
    monkeypatch.setattr(_registry, "_SPECS", dict(_registry._SPECS))
    monkeypatch.setitem(losses.LOSSES, NAME, None)
    losses.register(NAME, tapered, weights=lambda *a, alpha=1.0: 1.01 * tapered_weights(
        *a, alpha=alpha))
    report = ga.check_objective(NAME, cases=256, dtypes=("float32",), progress=None)
    assert not report.passed

  def test_drawn_in_figure_ones_layout_and_the_atlas(self, registered, tmp_path):
    report = ga.check_objective(registered, cases=64, dtypes=("float32",), progress=None)
    path = str(tmp_path / "tapered.png")
    ga.plot_objective(path, report)
    assert os.path.getsize(path) > 10_000
    # And in the atlas, in a column of its own beside the shipped ones.
    atlas = str(tmp_path / "atlas.png")
    ga.plot_atlas(atlas, {}, yours={registered: report.curves})
    assert os.path.getsize(atlas) > 10_000

  def test_without_a_closed_form_says_so(self, monkeypatch):
    monkeypatch.setattr(_registry, "_SPECS", dict(_registry._SPECS))
    monkeypatch.setitem(losses.LOSSES, NAME, None)
    losses.register(NAME, tapered)
    with pytest.raises(ValueError, match="has no closed form to check"):
      ga.check_objective(NAME, cases=8, progress=None)


@pytest.mark.xdist_group("registered_objective")
class TestTrained:

  @pytest.mark.slow
  def test_both_drivers_log_the_same_metrics(self, registered, tiny_config, tmp_path):
    from test_training import assert_same_records  # noqa: PLC0415
    cfg = tiny_config(loss=registered, steps=2, eval_every=2)
    cfg.loss_kwargs = {"alpha": 0.7}
    loop.train(cfg, str(tmp_path), **QUIET)
    runs, _ = scan.run_points(cfg, [cfg.seed], **QUIET)
    assert_same_records(metrics.read_metrics(str(tmp_path)),
                        metrics.run_records(scan.point(runs, 0), cfg.steps, cfg.eval_every))

  def test_its_hyperparameter_is_swept_and_matters(self, registered, tiny_config, tmp_path):
    # alpha caps the negatives' weight; on-policy the ratio is 1, so alpha
    # = 0.25 quarters their push and alpha = 1 leaves it: the runs differ.
    # 8 groups of 8: some are mixed, so that the advantages are not all 0.
    cfg = tiny_config(loss=registered, steps=1, eval_every=1, prompts_per_step=8, group_size=8)
    points = sweep.product(alpha=[0.25, 1.0])
    assert [config_lib.loss_kwargs(sweep.apply_overrides(cfg, p)) for p in points] == [
        {"alpha": 0.25}, {"alpha": 1.0}]
    status = sweep.run_grid(cfg, points, str(tmp_path), **QUIET)
    assert len(status["done"]) == 2 and not status["failed"]
    a, b = (metrics.read_metrics(str(tmp_path / sweep.point_name(p))) for p in points)
    assert 0 < a[-1]["reward_mean"] < 1
    assert a[-1]["grad_norm"] != b[-1]["grad_norm"]


def test_a_config_names_it_by_module_in_a_fresh_process(tmp_path):
  # `config.loss = "test_objectives:tapered"`: this module, imported and
  # registered on use by the command, with its own hyperparameter set in the
  # config file.
  tests = os.path.dirname(os.path.abspath(__file__))
  config = tmp_path / "cfg.py"
  config.write_text(
      "import sys\n"
      f"sys.path.insert(0, {tests!r})\n"
      "from conftest import make_tiny_config\n"
      "def get_config():\n"
      f"  c = make_tiny_config({str(tmp_path / 'base')!r}, steps=1, eval_every=1)\n"
      "  c.loss = 'test_objectives:tapered'\n"
      "  c.loss_kwargs = {'alpha': 0.5}\n"
      "  return c\n")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
  out = subprocess.run([sys.executable, "-m", "real_jax.train_scan", f"--config={config}",
                        f"--workdir={tmp_path / 'run'}"], capture_output=True, text=True,
                       env=env, timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "1 seeds x 1 steps" in out.stdout
  assert os.path.exists(tmp_path / "run" / "seed0" / "metrics.jsonl")


class TestShippedHyperparameters:

  def test_a_sweep_of_dro_beta_trains_different_runs(self, tiny_config, tmp_path):
    # DRO's pull towards pi_old acts once the ratio moves: the second
    # minibatch of a step is off-policy, so beta changes the update.
    cfg = tiny_config(loss="dro", steps=1, eval_every=1)
    points = sweep.product(loss=["dro"], dro_beta=[0.01, 10.0])
    status = sweep.run_grid(cfg, points, str(tmp_path), **QUIET)
    assert len(status["done"]) == 2
    a, b = (metrics.read_metrics(str(tmp_path / sweep.point_name(p))) for p in points)
    assert a[-1]["grad_norm"] != b[-1]["grad_norm"]

  def test_a_bad_key_lists_what_the_loss_takes(self, tiny_config):
    cfg = tiny_config()
    with pytest.raises(ValueError, match=r"'dro_bta'.*'dro' takes dro_beta, advantage"):
      sweep.apply_overrides(cfg, {"loss": "dro", "dro_bta": 0.1})
    with pytest.raises(ValueError, match="sets epsilon_high, which 'dro' does not take"):
      config_lib.validate(sweep.apply_overrides(cfg, {"loss": "dro",
                                                      "loss_kwargs.epsilon_high": 0.2}))

  def test_every_shipped_hyperparameter_has_a_field(self):
    fields = set(config_lib.get_config().loss_kwargs)
    for name in losses.LOSSES:
      assert set(config_lib.settable(name)) <= fields, name
    assert "tau" not in fields and "ref_logp" not in fields


def test_through_the_tunix_adapter_by_name(registered):
  pytest.importorskip("tunix")
  from tunix.rl import function_registry  # noqa: PLC0415

  import real_jax.integrations.tunix as rj_tunix  # noqa: PLC0415
  config = rj_tunix.RealJaxGRPOConfig(policy_loss_fn="real_jax_" + registered, num_generations=4,
                                      loss_kwargs={"alpha": 0.5})
  fn = function_registry.default_registry.get("policy_loss_fn", config.policy_loss_fn)
  assert fn.keywords["objective"] == registered
  with pytest.raises(ValueError, match="does not take"):
    rj_tunix.RealJaxGRPOConfig(policy_loss_fn="real_jax_" + registered, num_generations=4,
                               loss_kwargs={"beta_typo": 0.5})
  # On Tunix's flat rows [B*G, T], the adapter's loss and gradient are the
  # objective's own on the [B, G, T] groups.
  rng = np.random.default_rng(1)
  logp = jnp.asarray(-rng.uniform(0.1, 2.0, (8, 5)), jnp.float32)
  old = logp + jnp.asarray(rng.normal(0.0, 0.3, (8, 5)), jnp.float32)
  mask = jnp.asarray(np.arange(5)[None, :] < rng.integers(1, 6, (8,))[:, None])
  rewards = jnp.asarray([1, 0, 0, 1, 0, 1, 1, 1], jnp.float32)

  def adapter(lp):
    return rj_tunix.advantage_loss(registered, lp, old, mask, rewards, num_generations=4,
                                   loss_kwargs={"alpha": 0.5})[0]

  def own(lp):
    return tapered(lp.reshape(2, 4, 5), old.reshape(2, 4, 5), mask.reshape(2, 4, 5),
                   rewards.reshape(2, 4), alpha=0.5)
  np.testing.assert_allclose(float(adapter(logp)), float(own(logp)), rtol=1e-6)
  np.testing.assert_allclose(jax.grad(adapter)(logp), jax.grad(own)(logp), rtol=1e-6)

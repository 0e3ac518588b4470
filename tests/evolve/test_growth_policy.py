"""Growing and pruning during training: a spec-level policy on the runtime GrowthTrainer."""
import torch

import netevo_dsl as ne
from netevo_dsl.evolve.growth_policy import RecommendationPolicy
from netevo_dsl.runtime.growth import GrowthTrainer
from netevo_dsl.runtime.train import classification_data

SPEC = """
mask sparse = random(density=0.3, seed=1)
network n {
  input x: [B, 4]
  h = x |> linear(out=16, mask=sparse) |> relu()
  output y = linear(h, out=3)
}
"""


def _batches(x, y, size=32):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def test_policy_prunes_dead_units_grows_connections_and_carries_optimizer_state():
    torch.manual_seed(0)
    spec = ne.parse(SPEC)
    model = ne.compile_module(spec)
    with torch.no_grad():  # three units can never fire
        model.h[0].bias[:3] = -100.0
    data = classification_data("iris")
    policy = RecommendationPolicy(spec, grow_rate=0.05)
    trainer = GrowthTrainer(model, _batches(data.train_x, data.train_y), _batches(data.test_x, data.test_y),
                            on_epoch_end=policy)
    density_before = model.h[0].density
    trainer.fit(2)
    assert trainer.changes >= 1
    assert trainer.model.h[0].weight.shape[0] <= 13  # the dead units are gone
    assert trainer.model.h[0].density > density_before or any("grew" in line for line in policy.log)
    assert any("pruned" in line for line in policy.log)
    # Adam moments follow the kept units: every state tensor has its parameter's new shape.
    for p in trainer.model.parameters():
        state = trainer.optimizer.state.get(p, {})
        for v in state.values():
            if torch.is_tensor(v) and v.dim() > 0:
                assert v.shape == p.shape
    assert ne.check(policy.spec)
    _, accuracy = trainer.evaluate()
    assert accuracy is not None and 0.0 <= accuracy <= 1.0

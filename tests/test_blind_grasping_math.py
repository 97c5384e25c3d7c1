"""Unit tests of the simulator-agnostic BlindGrasping task math (pure torch)."""

import math

import pytest
import torch

from isaacgym_tasks import task_math as tm
from isaacgym_tasks.config import DEFAULT_REWARD_WEIGHTS, BlindGraspingConfig

J = 9
LOWER = torch.tensor([-0.15, -0.15, -0.15, -0.6, 0.0, -0.6, 0.0, -0.6, 0.0])
UPPER = torch.tensor([0.15, 0.15, 0.2, 1.4, 1.6, 1.4, 1.6, 1.4, 1.6])
SCALE = torch.tensor([0.01] * 3 + [0.1] * 6)
IDENTITY = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
REM = torch.full((3,), 40)


def test_scale_actions_adds_scaled_clipped_delta_and_respects_limits():
    targets = torch.zeros(2, J)
    actions = torch.tensor([[1.0] * J, [5.0] * J])  # second row must be clipped to 1
    new = tm.scale_actions(actions, targets, SCALE, LOWER, UPPER)
    assert torch.allclose(new[0], torch.max(SCALE, LOWER))
    assert torch.allclose(new[0], new[1])
    at_limit = tm.scale_actions(torch.ones(1, J), UPPER.unsqueeze(0), SCALE, LOWER, UPPER)
    assert torch.equal(at_limit[0], UPPER)
    low = tm.scale_actions(-torch.ones(1, J), LOWER.unsqueeze(0), SCALE, LOWER, UPPER)
    assert torch.equal(low[0], LOWER)


def test_observation_layout_and_normalisation():
    n = 3
    q = UPPER.repeat(n, 1)
    obs = tm.compute_observations(
        q,
        torch.ones(n, J),
        LOWER.repeat(n, 1),
        torch.zeros(n, 3),
        torch.tensor([[0.0, 1.0, 10.0]] * n),
        torch.full((n, J), 0.5),
        torch.full((n,), 0.25),
        LOWER,
        UPPER,
        torch.zeros(3),
    )
    assert obs.shape == (n, tm.obs_dim(J)) == (n, 43)
    assert torch.allclose(obs[:, :J], torch.ones(n, J))  # q at upper limit -> +1
    assert torch.allclose(obs[:, 2 * J : 3 * J], -torch.ones(n, J))  # targets at lower limit -> -1
    touch = obs[:, 3 * J + 3 : 3 * J + 6]
    assert torch.allclose(touch[0], torch.log1p(torch.tensor([0.0, 1.0, 10.0])))
    assert torch.allclose(obs[:, -1], torch.full((n,), 0.25))


def test_quat_rotate_inverse_undoes_a_yaw():
    yaw = math.pi / 2
    quat = torch.tensor([[math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]])
    v = torch.tensor([[0.0, 1.0, 0.0]])  # world +y is box +x after a 90 deg yaw
    assert torch.allclose(tm.quat_rotate_inverse(quat, v), torch.tensor([[1.0, 0.0, 0.0]]), atol=1e-6)


def test_fingertip_contact_needs_touch_and_proximity_to_box():
    box_pos = torch.zeros(1, 3)
    half = torch.full((1, 3), 0.03)
    tips = torch.tensor([[[0.041, 0.0, 0.0], [0.041, 0.0, 0.0], [0.2, 0.0, 0.0]]])
    touch = torch.tensor([[1.0, 0.0, 1.0]])
    contact = tm.fingertip_box_contact(tips, touch, box_pos, IDENTITY, half, 0.011)
    assert contact.tolist() == [[True, False, False]]  # near+touch, near-no-touch, touch-far (table)


def test_reward_terms_order_reach_contact_lift():
    w = dict(DEFAULT_REWARD_WEIGHTS)
    box = torch.zeros(3, 3)
    far = torch.full((3, 3, 3), 0.3)
    near = torch.full((3, 3, 3), 0.03)
    zeros3 = torch.zeros(3, 3, dtype=torch.bool)
    no = torch.zeros(3, dtype=torch.bool)
    act = torch.zeros(3, J)
    r_far, _ = tm.compute_reward(far, box, zeros3, torch.zeros(3), no, no, act, w, 0.1, REM)
    r_near, _ = tm.compute_reward(near, box, zeros3, torch.zeros(3), no, no, act, w, 0.1, REM)
    grasp = torch.ones(3, 3, dtype=torch.bool)
    r_grasp, _ = tm.compute_reward(near, box, grasp, torch.zeros(3), no, no, act, w, 0.1, REM)
    r_lift, terms = tm.compute_reward(near, box, grasp, torch.full((3,), 0.1), no, no, act, w, 0.1, REM)
    assert (r_far < r_near).all() and (r_near < r_grasp).all() and (r_grasp < r_lift).all()
    assert torch.allclose(terms["lift"], torch.ones(3)) and torch.allclose(terms["hold"], torch.ones(3))
    # lifting without two fingertips on the box (a flick) earns no lift term
    one = torch.tensor([[True, False, False]] * 3)
    _, flick = tm.compute_reward(near, box, one, torch.full((3,), 0.1), no, no, act, w, 0.1, REM)
    assert torch.equal(flick["lift"], torch.zeros(3))
    yes = torch.ones(3, dtype=torch.bool)
    r_succ, _ = tm.compute_reward(near, box, grasp, torch.full((3,), 0.1), yes, no, act, w, 0.1, REM)
    bonus = w["success"] + w["success_tail"] * 40
    assert torch.allclose(r_succ - r_lift, torch.full((3,), bonus))
    r_act, _ = tm.compute_reward(
        near, box, grasp, torch.full((3,), 0.1), no, no, torch.ones(3, J), w, 0.1, REM
    )
    assert torch.allclose(r_lift - r_act, torch.full((3,), -w["action"] * J))


def test_hold_timer_accumulates_and_resets():
    t = torch.zeros(2)
    for _ in range(20):
        t = tm.update_hold_time(t, torch.tensor([True, True]), 0.05)
    assert torch.allclose(t, torch.full((2,), 1.0))
    t = tm.update_hold_time(t, torch.tensor([True, False]), 0.05)
    assert torch.allclose(t, torch.tensor([1.05, 0.0]))


def test_terminations_success_failure_timeout_are_exclusive():
    hold = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.99])
    box = torch.tensor([[0, 0, 0.55], [0.2, 0, 0.43], [0, 0, 0.3], [0, 0, 0.43], [0, 0, 0.43], [0, 0, 0.55]])
    steps = torch.tensor([5, 5, 5, 100, 5, 100])
    success, failure, timeout = tm.compute_terminations(hold, box, torch.zeros(6, 2), 0.4, steps, 100, 1.0)
    assert success.tolist() == [True, False, False, False, False, False]
    assert failure.tolist() == [False, True, True, False, False, False]
    assert timeout.tolist() == [False, False, False, True, False, True]


def test_reset_sampling_is_seeded_and_in_range():
    def draw(seed):
        return tm.sample_reset(
            torch.Generator().manual_seed(seed), 500, (0.025, 0.035), (0.05, 0.2), 0.02, 1.0, 0.01, 0.02
        )

    a, b, c = draw(1), draw(1), draw(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.box_xy, c.box_xy)
    assert a.box_half.min() >= 0.025 and a.box_half.max() <= 0.035
    assert a.box_mass.min() >= 0.05 and a.box_mass.max() <= 0.2
    assert a.box_xy.abs().max() <= 0.02
    assert torch.allclose(a.box_quat.norm(dim=-1), torch.ones(500))
    assert tm.yaw_of(a.box_quat).abs().max() <= 1.0 + 1e-5
    assert a.hand_offset[:, 2].min() >= 0.0 and a.hand_offset[:, :2].abs().max() <= 0.01


def test_box_inertia_of_a_cube():
    inertia = tm.box_inertia(torch.tensor([1.2]), torch.full((1, 3), 0.05))
    assert torch.allclose(inertia, torch.full((1, 3), 1.2 / 12 * 2 * 0.01))


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"sim": "physx"}, "sim='physx'"),
        ({"episode_lenght_s": 3}, "episode_lenght_s"),
        ({"reward_weights": {"grip": 1.0}}, "grip"),
        ({"control_substeps": 0}, "control_substeps"),
        ({"box_mass_range": [0.2, 0.1]}, "box_mass_range"),
    ],
)
def test_bad_config_names_the_key(kwargs, word):
    with pytest.raises(ValueError) as err:
        BlindGraspingConfig.from_kwargs(kwargs)
    assert word in str(err.value) and "\n" not in str(err.value)


def test_config_merges_reward_weights():
    cfg = BlindGraspingConfig.from_kwargs({"reward_weights": {"lift": 7}})
    assert (
        cfg.reward_weights["lift"] == 7.0 and cfg.reward_weights["reach"] == DEFAULT_REWARD_WEIGHTS["reach"]
    )


def test_succeeding_now_beats_hovering_below_the_success_height():
    """Ending the episode by success must pay at least what staying could still earn."""
    w = dict(DEFAULT_REWARD_WEIGHTS)
    box, tips = torch.zeros(1, 3), torch.zeros(1, 3, 3)  # best possible reach
    grasp = torch.ones(1, 3, dtype=torch.bool)
    act, no, yes = torch.zeros(1, J), torch.zeros(1, dtype=torch.bool), torch.ones(1, dtype=torch.bool)
    for left in (1, 30, 99):
        rem = torch.tensor([left])
        hover, _ = tm.compute_reward(tips, box, grasp, torch.tensor([0.0999]), no, no, act, w, 0.1, rem)
        held, _ = tm.compute_reward(tips, box, grasp, torch.tensor([0.1]), no, no, act, w, 0.1, rem)
        succeed, _ = tm.compute_reward(tips, box, grasp, torch.tensor([0.1]), yes, no, act, w, 0.1, rem)
        assert succeed.item() >= held.item() * (left + 1) > hover.item() * (left + 1)

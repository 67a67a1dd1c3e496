"""Tests for helpers.distill and helpers.feature_terms: hand-computed values, invariants, gradients reaching only
the student."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from helpers import distill, feature_terms
from helpers.distill import (
    check_logits_compatible,
    combine_losses,
    confidence_weights,
    soft_target_loss,
    teacher_label_loss,
    weighted_soft_target_loss,
)
from helpers.feature_terms import attention_loss, feature_loss, hidden_state_loss, layer_map


def softmax(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


def cross_entropy(logits, target):
    return -math.log(softmax(logits)[target])


def random_logits(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def random_attention(batch, heads, seq_len, seed=0):
    scores = torch.randn(batch, heads, seq_len, seq_len, generator=torch.Generator().manual_seed(seed))
    return scores.softmax(dim=-1)


# --- soft targets ---------------------------------------------------------------------------------


def test_soft_target_loss_matches_hand_computation():
    student, teacher, temperature = [1.0, 0.0], [0.0, 2.0], 2.0
    p_teacher = softmax([z / temperature for z in teacher])
    p_student = softmax([z / temperature for z in student])
    expected = temperature**2 * kl(p_teacher, p_student)
    loss = soft_target_loss(torch.tensor([student]), torch.tensor([teacher]), temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_soft_target_loss_is_a_batch_mean_of_row_losses():
    student = torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    teacher = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    expected = (
        sum(
            3.0**2 * kl(softmax([z / 3.0 for z in t]), softmax([z / 3.0 for z in s]))
            for s, t in zip(student.tolist(), teacher.tolist(), strict=True)
        )
        / 2
    )
    assert soft_target_loss(student, teacher, 3.0).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_soft_target_loss_is_zero_on_identical_logits(temperature):
    logits = random_logits(5, 4)
    assert soft_target_loss(logits, logits.clone(), temperature).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("temperature", [2.0, 5.0])
def test_soft_target_loss_carries_the_temperature_squared_factor(temperature):
    student, teacher = random_logits(6, 4, seed=1), random_logits(6, 4, seed=2)
    # Logits scaled by T and softened by T give the probabilities of the raw logits at T=1: only T² differs.
    scaled = soft_target_loss(temperature * student, temperature * teacher, temperature)
    unscaled = soft_target_loss(student, teacher, 1.0)
    assert unscaled.item() > 0
    assert scaled.item() == pytest.approx(temperature**2 * unscaled.item(), rel=1e-5)


def test_soft_target_loss_rejects_non_positive_temperature():
    with pytest.raises(ValueError, match="temperature"):
        soft_target_loss(random_logits(2, 4), random_logits(2, 4), 0.0)


# --- hard labels from the teacher -----------------------------------------------------------------


def test_teacher_label_loss_all_uses_teacher_argmax():
    student = [[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]]
    teacher = [[0.0, 0.0, 5.0], [0.0, 3.0, 1.0]]  # argmax 2 and 1
    expected = (cross_entropy(student[0], 2) + cross_entropy(student[1], 1)) / 2
    loss = teacher_label_loss(torch.tensor(student), torch.tensor(teacher))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


# --- correctness-weighted soft targets ------------------------------------------------------------


def test_confidence_weights_are_teacher_probability_of_gold_label():
    teacher = [[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]]
    labels = [2, 1]
    teacher_tensor = torch.tensor(teacher, requires_grad=True)
    weights = confidence_weights(teacher_tensor, torch.tensor(labels), temperature=2.0)
    expected = [softmax([z / 2.0 for z in row])[label] for row, label in zip(teacher, labels, strict=True)]
    assert weights.tolist() == pytest.approx(expected, rel=1e-6)
    assert not weights.requires_grad


def test_weighted_soft_target_loss_matches_hand_computation():
    student, teacher, temperature = [[1.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [1.0, -1.0]], 2.0
    weights = [0.25, 1.0]
    row_kl = [
        kl(softmax([z / temperature for z in t]), softmax([z / temperature for z in s]))
        for s, t in zip(student, teacher, strict=True)
    ]
    expected = temperature**2 * (weights[0] * row_kl[0] + weights[1] * row_kl[1]) / 2
    loss = weighted_soft_target_loss(
        torch.tensor(student), torch.tensor(teacher), temperature, torch.tensor(weights)
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_weighted_soft_target_loss_with_unit_weights_equals_soft_target_loss():
    student, teacher = random_logits(5, 4, seed=3), random_logits(5, 4, seed=4)
    weighted = weighted_soft_target_loss(student, teacher, 3.0, torch.ones(5))
    assert weighted.item() == pytest.approx(soft_target_loss(student, teacher, 3.0).item(), rel=1e-6)


def test_weighted_soft_target_loss_rejects_wrong_weight_shape():
    with pytest.raises(ValueError, match="weights"):
        weighted_soft_target_loss(random_logits(3, 4), random_logits(3, 4), 1.0, torch.ones(2))


# --- shape checks ---------------------------------------------------------------------------------


def test_check_logits_compatible_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 5\)"):
        check_logits_compatible(torch.zeros(2, 4), torch.zeros(2, 5))


@pytest.mark.parametrize(
    "loss_fn",
    [
        lambda s, t: soft_target_loss(s, t, 2.0),
        lambda s, t: teacher_label_loss(s, t),
        lambda s, t: weighted_soft_target_loss(s, t, 2.0, torch.ones(3)),
    ],
    ids=["soft_target", "teacher_label", "weighted_soft_target"],
)
def test_logit_losses_reject_mismatched_shapes(loss_fn):
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 2\)"):
        loss_fn(torch.zeros(3, 4), torch.zeros(3, 2))


# --- gradients reach only the student -------------------------------------------------------------


def _logit_case(loss_fn):
    def run():
        student = random_logits(4, 4, seed=5).requires_grad_()
        teacher = random_logits(4, 4, seed=6).requires_grad_()
        labels = teacher.detach().argmax(dim=-1)
        labels[0] = (labels[0] + 1) % 4  # one row where the teacher is wrong
        return loss_fn(student, teacher, labels), student, teacher

    return run


def _hidden_case():
    student = random_logits(2, 3, 4, seed=7).requires_grad_()
    teacher = random_logits(2, 3, 4, seed=8).requires_grad_()
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    return hidden_state_loss(student, teacher, mask), student, teacher


def _attention_case():
    student = random_attention(2, 2, 3, seed=9).requires_grad_()
    teacher = random_attention(2, 2, 3, seed=10).requires_grad_()
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    return attention_loss((student,), (teacher,), mask, [(1, 1)]), student, teacher


@pytest.mark.parametrize(
    "case",
    [
        _logit_case(lambda s, t, y: soft_target_loss(s, t, 2.0)),
        _logit_case(lambda s, t, y: teacher_label_loss(s, t)),
        _logit_case(lambda s, t, y: weighted_soft_target_loss(s, t, 2.0, confidence_weights(t, y))),
        _hidden_case,
        _attention_case,
    ],
    ids=[
        "soft_target",
        "teacher_label",
        "weighted",
        "hidden",
        "attention",
    ],
)
def test_gradient_reaches_student_but_not_teacher(case):
    loss, student, teacher = case()
    assert loss.dim() == 0
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum().item() > 0


# --- hidden states --------------------------------------------------------------------------------


def test_hidden_state_loss_matches_hand_computation_and_ignores_padding():
    student = torch.tensor([[[1.0, 2.0], [100.0, 100.0]], [[0.0, 1.0], [3.0, 0.0]]])  # (B=2, L=2, D=2)
    teacher = torch.zeros(2, 2, 2)
    mask = torch.tensor([[1, 0], [1, 1]])
    # Real tokens: (1,2), (0,1), (3,0) -> squared errors 1+4+0+1+9+0 = 15 over 3 tokens x 2 dims.
    assert hidden_state_loss(student, teacher, mask).item() == pytest.approx(15 / 6)


def test_hidden_state_loss_is_unchanged_by_appended_padding():
    student, teacher = random_logits(2, 3, 4, seed=13), random_logits(2, 3, 4, seed=14)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    padded_student = torch.cat([student, random_logits(2, 5, 4, seed=15)], dim=1)
    padded_teacher = torch.cat([teacher, random_logits(2, 5, 4, seed=16)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(2, 5, dtype=mask.dtype)], dim=1)
    short = hidden_state_loss(student, teacher, mask)
    long = hidden_state_loss(padded_student, padded_teacher, padded_mask)
    assert short.item() > 0
    assert long.item() == pytest.approx(short.item(), rel=1e-6)


def test_hidden_state_loss_is_zero_when_only_padded_positions_differ():
    teacher = random_logits(2, 4, 3, seed=17)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    student = teacher.clone()
    student[mask == 0] = 1e6
    assert hidden_state_loss(student, teacher, mask).item() == 0.0


def test_hidden_state_loss_applies_projection_and_trains_it():
    projection = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        projection.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    student = torch.tensor([[[1.0, 2.0]]])  # projects to (1, 2, 3)
    teacher = torch.tensor([[[1.0, 0.0, 0.0]]])
    loss = hidden_state_loss(student, teacher, torch.ones(1, 1), projection)
    assert loss.item() == pytest.approx((0 + 4 + 9) / 3)
    loss.backward()
    assert projection.weight.grad is not None and projection.weight.grad.abs().sum().item() > 0


def test_hidden_state_loss_mismatched_width_without_projection_is_a_clear_error():
    with pytest.raises(ValueError, match="projection"):
        hidden_state_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 5), torch.ones(1, 2))


def test_hidden_state_loss_rejects_wrong_mask_shape():
    with pytest.raises(ValueError, match="attention_mask"):
        hidden_state_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), torch.ones(1, 3))


# --- layer maps and feature loss ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_student", "num_teacher", "expected"),
    [
        (3, 6, [(1, 2), (2, 4), (3, 6)]),
        (6, 12, [(i, 2 * i) for i in range(1, 7)]),
        (4, 4, [(1, 1), (2, 2), (3, 3), (4, 4)]),
        (1, 12, [(1, 12)]),
        (4, 6, [(1, 2), (2, 3), (3, 5), (4, 6)]),  # 1.5 and 4.5 round up
        (6, 4, None),
    ],
)
def test_layer_map_examples(num_student, num_teacher, expected):
    if expected is None:
        with pytest.raises(ValueError, match="more layers"):
            layer_map(num_student, num_teacher)
    else:
        assert layer_map(num_student, num_teacher) == expected


@pytest.mark.parametrize(("num_student", "num_teacher"), [(0, 6), (3, 0), (-1, 4)])
def test_layer_map_rejects_non_positive_layer_counts(num_student, num_teacher):
    with pytest.raises(ValueError, match=">= 1"):
        layer_map(num_student, num_teacher)


def test_feature_loss_is_mean_over_mapped_pairs():
    mask = torch.tensor([[1, 1, 0]])
    student_states = tuple(random_logits(1, 3, 2, seed=20 + i) for i in range(3))  # embeddings + 2 layers
    teacher_states = tuple(random_logits(1, 3, 2, seed=30 + i) for i in range(5))  # embeddings + 4 layers
    mapping = layer_map(2, 4)
    assert mapping == [(1, 2), (2, 4)]
    expected = (
        hidden_state_loss(student_states[1], teacher_states[2], mask).item()
        + hidden_state_loss(student_states[2], teacher_states[4], mask).item()
    ) / 2
    assert feature_loss(student_states, teacher_states, mask, mapping).item() == pytest.approx(
        expected, rel=1e-6
    )


def test_feature_loss_with_projections_handles_different_widths():
    mask = torch.ones(2, 3)
    student_states = tuple(random_logits(2, 3, 2, seed=40 + i) for i in range(3))
    teacher_states = tuple(random_logits(2, 3, 4, seed=50 + i) for i in range(5))
    projections = nn.ModuleList(nn.Linear(2, 4) for _ in range(2))
    loss = feature_loss(student_states, teacher_states, mask, layer_map(2, 4), projections)
    assert loss.item() > 0
    with pytest.raises(ValueError, match="projections"):
        feature_loss(student_states, teacher_states, mask, layer_map(2, 4), projections[:1])


def test_feature_loss_rejects_out_of_range_mapping():
    states = tuple(torch.zeros(1, 2, 3) for _ in range(3))
    with pytest.raises(ValueError, match="out of range"):
        feature_loss(states, states, torch.ones(1, 2), [(1, 3)])


# --- attention ------------------------------------------------------------------------------------


def test_attention_loss_matches_hand_computation():
    teacher_rows = [[0.5, 0.5], [0.9, 0.1]]
    student_rows = [[0.8, 0.2], [0.3, 0.7]]
    teacher = torch.tensor(teacher_rows).reshape(1, 1, 2, 2)
    student = torch.tensor(student_rows).reshape(1, 1, 2, 2)
    expected = (kl(teacher_rows[0], student_rows[0]) + kl(teacher_rows[1], student_rows[1])) / 2
    loss = attention_loss((student,), (teacher,), torch.ones(1, 2), [(1, 1)])
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_attention_loss_is_zero_on_identical_and_positive_otherwise():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    teacher = tuple(random_attention(2, 3, 4, seed=60 + i) for i in range(4))
    student = tuple(random_attention(2, 3, 4, seed=70 + i) for i in range(2))
    mapping = layer_map(2, 4)
    identical = attention_loss(tuple(teacher[t - 1].clone() for _, t in mapping), teacher, mask, mapping)
    assert identical.item() == pytest.approx(0.0, abs=1e-6)
    assert attention_loss(student, teacher, mask, mapping).item() > 0


def test_attention_loss_ignores_padded_query_rows():
    mask = torch.tensor([[1, 1, 0]])
    teacher = random_attention(1, 2, 3, seed=80)
    student = teacher.clone()
    student[:, :, 2, :] = torch.tensor([0.98, 0.01, 0.01])  # only the padded query row differs
    assert attention_loss((student,), (teacher,), mask, [(1, 1)]).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_loss((student,), (teacher,), torch.ones(1, 3), [(1, 1)]).item() > 0


def test_attention_loss_with_different_head_counts_compares_head_averages():
    student = random_attention(2, 2, 3, seed=90)
    teacher = random_attention(2, 4, 3, seed=91)
    mask = torch.ones(2, 3)
    loss = attention_loss((student,), (teacher,), mask, [(1, 1)])
    student_mean, teacher_mean = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    expected = attention_loss((student_mean,), (teacher_mean,), mask, [(1, 1)])
    assert loss.item() > 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # Different heads with the same head average count as a perfect match.
    swapped = torch.cat([teacher_mean, teacher_mean], dim=1)
    assert attention_loss((swapped,), (teacher,), mask, [(1, 1)]).item() == pytest.approx(0.0, abs=1e-6)


# --- combining ------------------------------------------------------------------------------------


def test_combine_losses_weighted_sum():
    components = {"hard_label": torch.tensor(2.0), "kd": torch.tensor(3.0)}
    weights = {"hard_label": 0.5, "kd": 2.0}
    assert combine_losses(components, weights).item() == pytest.approx(0.5 * 2.0 + 2.0 * 3.0)


def test_combine_losses_names_component_without_weight():
    with pytest.raises(ValueError, match="without a weight: \\['kd'\\]"):
        combine_losses({"hard_label": torch.tensor(1.0), "kd": torch.tensor(1.0)}, {"hard_label": 1.0})


def test_combine_losses_names_weight_without_component():
    with pytest.raises(ValueError, match="without a component: \\['attention'\\]"):
        combine_losses({"kd": torch.tensor(1.0)}, {"kd": 1.0, "attention": 0.1})


def test_every_loss_is_finite_and_float32_on_half_precision_inputs():
    """Under fp16 autocast the losses get half-precision tensors: 1e-12 underflows there, so each computes in fp32."""
    torch.manual_seed(0)
    half = torch.float16
    batch, length, width, heads = 3, 5, 8, 2
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, 3:] = 0
    logits_s, logits_t = torch.randn(batch, 4).to(half), torch.randn(batch, 4).to(half)
    labels = torch.tensor([0, 1, 2])
    attention_s = torch.softmax(torch.randn(batch, heads, length, length) * 8, -1).to(half)
    attention_t = torch.softmax(torch.randn(batch, heads, length, length) * 8, -1).to(half)
    hidden_s = (torch.randn(batch, length, width) * 300).to(half)
    hidden_t = torch.randn(batch, length, width).to(half)
    values = {
        "soft_target": distill.soft_target_loss(logits_s, logits_t, 2.0),
        "teacher_label": distill.teacher_label_loss(logits_s, logits_t),
        "weighted": distill.weighted_soft_target_loss(logits_s, logits_t, 2.0,
                                                      distill.confidence_weights(logits_t, labels)),
        "hidden": feature_terms.hidden_state_loss(hidden_s, hidden_t, mask),
        "attention": feature_terms.attention_loss([attention_s], [attention_t], mask, [(1, 1)]),
    }
    for name, value in values.items():
        assert value.dtype == torch.float32 and torch.isfinite(value), name


# --- distillation_loss: the spec's weighted sum of the terms --------------------------------------


def outputs(logits, hidden_states=None, attentions=None):
    """A model's forward output as distillation_loss reads it (HF outputs expose the same attributes)."""
    return SimpleNamespace(logits=logits, hidden_states=hidden_states, attentions=attentions)


def random_states(layers, batch, seq_len, width, seed):
    return tuple(random_logits(batch, seq_len, width, seed=seed + i) for i in range(layers))


def test_distillation_loss_is_the_spec_weighted_sum_of_the_individual_terms():
    batch, length, width = 4, 5, 6
    spec = distill.DistillSpec(name="everything", hard_label_weight=0.3, label_smoothing=0.1, soft_target_weight=0.7,
                               temperature=3.0, teacher_label_weight=0.2, feature_weight=1.5,
                               attention_weight=0.25)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    teacher_logits = random_logits(batch, 4, seed=3)
    labels = teacher_logits.argmax(-1)
    labels[0] = (labels[0] + 1) % 4  # the teacher is wrong on one row
    student_states = random_states(3, batch, length, width, seed=20)  # embeddings + 2 layers
    teacher_states = random_states(5, batch, length, width, seed=30)  # embeddings + 4 layers
    student_attn = tuple(random_attention(batch, 2, length, seed=40 + i) for i in range(2))
    teacher_attn = tuple(random_attention(batch, 2, length, seed=50 + i) for i in range(4))
    student = outputs(random_logits(batch, 4, seed=1), student_states, student_attn)
    teacher = outputs(random_logits(batch, 4, seed=2), teacher_states, teacher_attn)
    mapping = layer_map(2, 4)

    loss, components = distill.distillation_loss(spec, student, labels, mask, target_logits=teacher_logits,
                                                 teacher_outputs=teacher, layer_mapping=mapping)

    expected = {
        "hard_label": torch.nn.functional.cross_entropy(student.logits, labels, label_smoothing=0.1),
        "soft_target": soft_target_loss(student.logits, teacher_logits, 3.0),
        "teacher_label": teacher_label_loss(student.logits, teacher_logits),
        "feature": feature_loss(student_states, teacher_states, mask, mapping),
        "attention": attention_loss(student_attn, teacher_attn, mask, mapping),
    }
    assert set(components) == set(expected)
    for name, value in expected.items():
        assert components[name].item() == pytest.approx(value.item(), rel=1e-5), name
    weights = {"hard_label": 0.3, "soft_target": 0.7, "teacher_label": 0.2, "feature": 1.5, "attention": 0.25}
    assert spec.weights() == weights
    assert loss.item() == pytest.approx(sum(weights[n] * expected[n].item() for n in expected), rel=1e-5)
    assert all(value.item() > 0 for value in expected.values())  # every term counts: a dropped one would show


def test_distillation_loss_of_the_baseline_is_plain_cross_entropy():
    logits, labels = random_logits(6, 4, seed=4).requires_grad_(), torch.tensor([0, 1, 2, 3, 0, 1])
    loss, components = distill.distillation_loss(distill.BASELINE, outputs(logits), labels, torch.ones(6, 3))
    assert set(components) == {"hard_label"}
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())
    loss.backward()
    assert logits.grad is not None


def test_confidence_weighted_kd_weighs_each_row_by_the_teachers_gold_probability():
    spec = distill.DistillSpec(name="confident", hard_label_weight=0.5, soft_target_weight=0.5, temperature=2.0,
                               confidence_weighted=True)
    student, teacher = random_logits(4, 4, seed=5), random_logits(4, 4, seed=6)
    labels = torch.tensor([3, 2, 1, 0])
    _, components = distill.distillation_loss(spec, outputs(student), labels, torch.ones(4, 2), target_logits=teacher)
    expected = weighted_soft_target_loss(student, teacher, 2.0, confidence_weights(teacher, labels))
    assert components["soft_target"].item() == pytest.approx(expected.item())
    assert components["soft_target"].item() < soft_target_loss(student, teacher, 2.0).item()  # weights are < 1


def test_a_teacher_window_shorter_than_the_students_sequence():
    """The teacher reads the first W of the student's L tokens: features and attentions are compared on that window
    (the student's attention renormalised over it), and nothing past it counts."""
    batch, length, window, width = 3, 8, 5, 4
    spec = distill.DistillSpec(name="online", feature_weight=1.0, attention_weight=1.0)
    mask = torch.tensor([[1] * 8, [1] * 6 + [0] * 2, [1] * 3 + [0] * 5])
    student_states = random_states(2, batch, length, width, seed=60)
    teacher_states = random_states(3, batch, window, width, seed=70)
    student_attn = (random_attention(batch, 2, length, seed=80),)
    teacher_attn = tuple(random_attention(batch, 2, window, seed=90 + i) for i in range(2))
    mapping = layer_map(1, 2)
    teacher = outputs(random_logits(batch, 4, seed=11), teacher_states, teacher_attn)
    labels = torch.tensor([0, 1, 2])

    def run(states, attentions):
        return distill.distillation_loss(spec, outputs(random_logits(batch, 4, seed=10), states, attentions), labels,
                                         mask, teacher_outputs=teacher, layer_mapping=mapping)[1]

    components = run(student_states, student_attn)
    short_mask = mask[:, :window]
    expected_feature = feature_loss([s[:, :window] for s in student_states], teacher_states, short_mask, mapping)
    windowed = student_attn[0][:, :, :window, :window]
    windowed = windowed / windowed.sum(-1, keepdim=True)
    expected_attention = attention_loss([windowed], teacher_attn, short_mask, mapping)
    assert components["feature"].item() == pytest.approx(expected_feature.item(), rel=1e-5)
    assert components["attention"].item() == pytest.approx(expected_attention.item(), rel=1e-5)

    # Student states past the window change no feature term.
    far = tuple(torch.cat([s[:, :window], torch.full((batch, length - window, width), 1e3)], dim=1)
                for s in student_states)
    assert run(far, student_attn)["feature"].item() == pytest.approx(components["feature"].item(), rel=1e-6)
    # Attention mass moved between keys past the window changes no attention term (the renormalised rows are equal).
    moved = student_attn[0].clone()
    moved[..., window:] = moved[..., window:].flip(-1)
    assert run(student_states, (moved,))["attention"].item() == pytest.approx(components["attention"].item(),
                                                                              rel=1e-6)


def test_window_attention_rows_sum_to_one_and_keep_their_proportions():
    attention = random_attention(2, 3, 7, seed=12)
    inside = feature_terms.window_attention(attention, 4)
    assert inside.shape == (2, 3, 4, 4)
    assert torch.allclose(inside.sum(-1), torch.ones(2, 3, 4))
    ratio = inside / attention[:, :, :4, :4]  # each row scaled by one factor: 1 / (its mass inside the window)
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio))
    assert torch.allclose(ratio[..., 0], 1 / attention[:, :, :4, :4].sum(-1))
    assert feature_terms.window_attention(attention, 7) is attention  # the whole sequence: unchanged


def test_distillation_loss_refuses_a_spec_without_its_teachers_inputs():
    student = outputs(random_logits(2, 4, seed=13), random_states(2, 2, 3, 4, seed=14))
    labels, mask = torch.tensor([0, 1]), torch.ones(2, 3)
    kd = distill.DistillSpec(name="kd", soft_target_weight=1.0)
    with pytest.raises(ValueError, match="kd: .*target_logits"):
        distill.distillation_loss(kd, student, labels, mask)
    labels_only = distill.DistillSpec(name="teacher-labels", teacher_label_weight=1.0)
    with pytest.raises(ValueError, match="target_logits"):
        distill.distillation_loss(labels_only, student, labels, mask)
    feature = distill.DistillSpec(name="feature", feature_weight=1.0)
    with pytest.raises(ValueError, match="feature: .*teacher's outputs"):
        distill.distillation_loss(feature, student, labels, mask, layer_mapping=[(1, 1)])

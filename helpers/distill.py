"""The distillation loss: which terms a student trains with (``DistillSpec``), the response and label terms, and
``distillation_loss``, which weighs them and the feature and similarity terms (``feature_terms``) into one loss.

Every term takes student and teacher tensors and returns a scalar tensor. Each loss detaches its teacher inputs itself,
so gradients reach only the student (and any projection) even if a caller forgets `torch.no_grad()`. Every loss computes
in float32: under fp16 autocast, ε = 1e-12 underflows to 0 and squared hidden-state differences overflow, which turned
the attention loss into nan.

Symbols: B batch, C classes, L sequence length, D hidden size, H attention heads, T temperature, z_s / z_t student /
teacher logits, p = softmax(z / T)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from helpers.feature_terms import attention_loss, feature_loss, window_attention

# Where a spec's soft targets come from. Only "teacher" and "committee" involve the BERT teacher's choices: the others
# are the no-teacher twins that keep everything else (rows, views, steps, the loss) and swap the teacher out.
SOFT_TARGET_SOURCES = {
    "teacher": "the frozen BERT teacher",
    "gold-smoothed": "the gold label smoothed row by row to the teacher's confidence there (its top probability), the "
                     "rest spread evenly: the teacher's memorisation without its choice of class or its dark knowledge",
    "peer": "a baseline student of another seed, trained on the same rows (no BERT): the twin of internal terms",
    "committee": "the teacher's probabilities averaged with cross-fitted baseline students'",
    "crossfit": "cross-fitted baseline students alone: each row scored by a student that never trained on it (no BERT)",
}


@dataclass(frozen=True)
class DistillSpec:
    """Which terms a student trains with, and their weights. All zero but ``hard_label_weight``: the baseline.

    loss = hard_label_weight · CE_ε(y, z_s) + soft_target_weight · T² KL(p_t^T ‖ p_s^T)
           + teacher_label_weight · CE(argmax z_t, z_s) + feature_weight · L_hidden
           + attention_weight · L_attention

    CE_ε is cross-entropy with label smoothing ε (``label_smoothing``); z_t comes from ``soft_targets`` (see
    ``SOFT_TARGET_SOURCES``). ``distillation_loss`` computes exactly this sum."""

    name: str = "baseline"
    hard_label_weight: float = 1.0
    label_smoothing: float = 0.0
    soft_target_weight: float = 0.0
    temperature: float = 2.0
    soft_targets: str = "teacher"
    confidence_weighted: bool = False  # weight each row's KD term by the teacher's probability of the gold label
    teacher_label_weight: float = 0.0
    feature_weight: float = 0.0
    attention_weight: float = 0.0
    # "fresh": every step trains on a new augmented view of its batch (data.fresh_view), which the teacher scores
    # online: function matching (Beyer et al. 2022). A twin on views keeps its cached targets of the row.
    views: str = ""
    epochs_scale: float = 1.0  # >1 adds steps (the compute control, the longer schedule of function matching)

    @property
    def teacher_on_views(self) -> bool:
        """The teacher scores each fresh view online, so its logits match what the student sees."""
        return self.views == "fresh" and self.soft_targets == "teacher" and (
            self.soft_target_weight > 0 or self.teacher_label_weight > 0)

    @property
    def uses_cached_logits(self) -> bool:
        return (self.soft_target_weight > 0 or self.teacher_label_weight > 0) and not self.teacher_on_views

    @property
    def uses_online_teacher(self) -> bool:
        """The teacher runs at every step: internal terms need its states, function matching its logits on each view."""
        return self.feature_weight > 0 or self.attention_weight > 0 or self.teacher_on_views

    @property
    def uses_bert_teacher(self) -> bool:
        """Whether the frozen BERT teacher informs this student at all (controls and twins say no)."""
        uses_targets = self.uses_online_teacher or self.uses_cached_logits
        return uses_targets and self.soft_targets in ("teacher", "committee")

    @property
    def gold_only(self) -> bool:
        """Trains on gold labels alone, plainly (the baseline and the compute control): whatever its steps."""
        plain = not (self.label_smoothing or self.views)
        return plain and self.weights() == BASELINE.weights()

    def weights(self) -> dict[str, float]:
        """Each term's weight, by the names ``distillation_loss`` gives its components."""
        return {"hard_label": self.hard_label_weight, "soft_target": self.soft_target_weight,
                "teacher_label": self.teacher_label_weight, "feature": self.feature_weight,
                "attention": self.attention_weight}

    def settings(self) -> dict:
        return asdict(self)

    def __post_init__(self):
        if self.views not in ("", "fresh"):
            raise ValueError(f"{self.name}: views must be '' or 'fresh'.")
        if self.soft_targets not in SOFT_TARGET_SOURCES:
            raise ValueError(f"{self.name}: soft_targets must be one of {', '.join(SOFT_TARGET_SOURCES)}.")
        internal = self.feature_weight > 0 or self.attention_weight > 0
        if internal and self.soft_targets not in ("teacher", "peer"):
            raise ValueError(f"{self.name}: feature and attention terms need one model's internals: "
                             "soft_targets must be 'teacher' or 'peer'.")
        if not 0 <= self.label_smoothing < 1 or self.epochs_scale <= 0:
            raise ValueError(f"{self.name}: label_smoothing must be in [0, 1) and epochs_scale > 0.")


BASELINE = DistillSpec()


def check_logits_compatible(student_logits: Tensor, teacher_logits: Tensor) -> None:
    """Raise ValueError unless student and teacher logits are both (B, C) with the same B and C."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits have shape {tuple(student_logits.shape)} but teacher logits have shape "
            f"{tuple(teacher_logits.shape)}; both must be (batch, num_classes) for the same batch and the same label "
            "set (check that the cached teacher logits match this dataset split and that both classification heads "
            "have the same num_labels)")
    if student_logits.dim() != 2:
        raise ValueError(f"logits must be 2-D (batch, num_classes), got shape {tuple(student_logits.shape)}; "
                         "flatten or select the classification logits first")


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")


def _check_batch_vector(name: str, vector: Tensor, batch_size: int) -> None:
    if vector.shape != (batch_size,):
        raise ValueError(f"{name} must have shape ({batch_size},) to match the logits, got {tuple(vector.shape)}")


def _per_example_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """KL(p_t ‖ p_s) per row at temperature T, without the T² factor. (B, C), (B, C) -> (B,)."""
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    # log_target=True keeps the teacher in log space too, so tiny teacher probabilities never hit log(0).
    return F.kl_div(student_log_probs, teacher_log_probs, reduction="none", log_target=True).sum(dim=-1)


def soft_target_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Hinton soft-target loss: L = T² · (1/B) Σ_b KL(p_t,b ‖ p_s,b), with p = softmax(z / T).

    Shapes: student_logits, teacher_logits (B, C) -> scalar. The soft-target gradient scales as 1/T², so the T²
    factor keeps it comparable across temperatures and `soft_target_weight` need not be retuned for each T."""
    check_logits_compatible(student_logits, teacher_logits)
    _check_temperature(temperature)
    student_logits, teacher_logits = student_logits.float(), teacher_logits.float()
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    kl = F.kl_div(student_log_probs, teacher_log_probs, reduction="batchmean", log_target=True)
    return temperature**2 * kl


def teacher_label_loss(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Cross-entropy against the teacher's hard label ŷ_t = argmax_c z_t: L = (1/B) Σ_b CE(z_s,b, ŷ_t,b).
    Shapes: student_logits, teacher_logits (B, C) -> scalar."""
    check_logits_compatible(student_logits, teacher_logits)
    return F.cross_entropy(student_logits.float(), teacher_logits.detach().argmax(dim=-1))


def confidence_weights(teacher_logits: Tensor, labels: Tensor, temperature: float = 1.0) -> Tensor:
    """Per-example trust in the teacher: w_b = softmax(z_t,b / T)[y_b], its probability of the gold label.
    Shapes: teacher_logits (B, C); labels (B,) int64 -> (B,) in [0, 1], detached (weights are data)."""
    _check_temperature(temperature)
    if teacher_logits.dim() != 2:
        raise ValueError(f"teacher_logits must be (batch, num_classes), got {tuple(teacher_logits.shape)}")
    _check_batch_vector("labels", labels, teacher_logits.shape[0])
    teacher_probs = F.softmax(teacher_logits.detach().float() / temperature, dim=-1)
    return teacher_probs.gather(1, labels.unsqueeze(1)).squeeze(1)


def weighted_soft_target_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float, weights: Tensor
                              ) -> Tensor:
    """Correctness-weighted soft targets: L = T² · (1/B) Σ_b w_b · KL(p_t,b ‖ p_s,b).

    With w from `confidence_weights` the student copies the teacher only as much as the teacher is right on that
    example; w ≡ 1 gives back `soft_target_loss`. Dividing by B (not Σ w) keeps the loss's scale tied to the teacher's
    accuracy instead of renormalising it away. Shapes: logits (B, C); weights (B,) -> scalar."""
    check_logits_compatible(student_logits, teacher_logits)
    _check_temperature(temperature)
    _check_batch_vector("weights", weights, student_logits.shape[0])
    per_example = _per_example_kl(student_logits.float(), teacher_logits.float(), temperature)  # (B,)
    return temperature**2 * (weights.detach() * per_example).mean()


def combine_losses(components: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """Weighted sum L = Σ_k weights[k] · components[k], e.g. {"hard_label": ..., "soft_target": ...}. Every component
    needs a weight and every weight a component: a silently dropped term would change the experiment unnoticed."""
    missing_weights = sorted(set(components) - set(weights))
    missing_components = sorted(set(weights) - set(components))
    if missing_weights or missing_components:
        raise ValueError(f"loss components without a weight: {missing_weights}; weights without a component: "
                         f"{missing_components}; components and weights must have the same keys")
    if not components:
        raise ValueError("combine_losses needs at least one loss component")
    for name, component in components.items():
        if component.dim() != 0:
            raise ValueError(f"loss component {name!r} must be a scalar tensor, got shape {tuple(component.shape)}")
    return sum(weights[name] * components[name] for name in components)


def distillation_loss(spec: DistillSpec, student_outputs, labels: Tensor, attention_mask: Tensor,
                      target_logits: Tensor | None = None, teacher_outputs=None,
                      layer_mapping: Sequence[tuple[int, int]] | None = None,
                      projections: Sequence[nn.Module] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """The training loss of one batch: ``spec``'s weighted sum of its terms (the formula in ``DistillSpec``). Returns
    (loss, components), each component a scalar before weighting.

    student_outputs: the student's forward output (``.logits`` (B, C); ``.hidden_states`` / ``.attentions`` when an
    online term is on). labels (B,). attention_mask (B, L).
    target_logits (B, C): the rows' soft targets from ``spec.soft_targets`` (the teacher's or a no-teacher twin's), for
    the response and teacher-label terms; under function matching (``spec.teacher_on_views``) the online teacher's
    logits on the same view replace them.
    teacher_outputs: the online teacher's forward output, possibly on a shorter window (B, L_t ≤ L) of the same tokens;
    the student's states and attentions are compared on that window."""
    logits = student_outputs.logits.float()  # fp32 whatever the autocast: the terms underflow in half precision
    components = {"hard_label": F.cross_entropy(logits, labels, label_smoothing=spec.label_smoothing)}
    if spec.teacher_on_views:
        if teacher_outputs is None:
            raise ValueError(f"{spec.name}: function matching needs the teacher's outputs on the view.")
        target_logits = teacher_outputs.logits
    if spec.uses_cached_logits and target_logits is None:
        raise ValueError(f"{spec.name}: the training rows carry no cached target_logits column.")
    if spec.soft_target_weight > 0:
        if spec.confidence_weighted:
            weights = confidence_weights(target_logits, labels)
            components["soft_target"] = weighted_soft_target_loss(logits, target_logits, spec.temperature, weights)
        else:
            components["soft_target"] = soft_target_loss(logits, target_logits, spec.temperature)
    if spec.teacher_label_weight > 0:
        components["teacher_label"] = teacher_label_loss(logits, target_logits)
    if spec.feature_weight > 0 or spec.attention_weight > 0:
        if teacher_outputs is None:
            raise ValueError(f"{spec.name}: feature and attention terms need the teacher's outputs.")
        window = (teacher_outputs.hidden_states or teacher_outputs.attentions)[0].shape[-2]  # L_t
        mask = attention_mask[:, :window]
        if spec.feature_weight > 0:
            student_states = [state[:, :window] for state in student_outputs.hidden_states]
            components["feature"] = feature_loss(student_states, teacher_outputs.hidden_states, mask, layer_mapping,
                                                 projections)
        if spec.attention_weight > 0:
            # The student attends over all L tokens; restricted to the teacher's window, renormalised over it.
            student_attentions = [window_attention(attention, window) for attention in student_outputs.attentions]
            components["attention"] = attention_loss(student_attentions, teacher_outputs.attentions, mask,
                                                     layer_mapping)
    weights = spec.weights()
    return combine_losses(components, {name: weights[name] for name in components}), components

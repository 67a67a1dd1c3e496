"""The feature and similarity families' loss terms: hidden states and attention maps, compared between a student and its
teacher on the same tokens. ``distill.distillation_loss`` weighs them with the others.

Like every term in ``distill``, each detaches its teacher inputs and computes in float32 (see ``distill``). Symbols: B
batch, L sequence length, D hidden size, H attention heads, m the attention mask."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

# Attention probabilities can be exactly 0 (padded keys, saturated softmax); log(0) would make the KL nan.
ATTENTION_EPS = 1e-12


def _check_mask(attention_mask: Tensor, batch_size: int, seq_len: int) -> None:
    if attention_mask.shape != (batch_size, seq_len):
        raise ValueError(f"attention_mask must have shape ({batch_size}, {seq_len}) to match the hidden states or "
                         f"attentions, got {tuple(attention_mask.shape)}")


def hidden_state_loss(student_hidden: Tensor, teacher_hidden: Tensor, attention_mask: Tensor,
                      projection: nn.Module | None = None) -> Tensor:
    """Masked MSE between hidden states: L = Σ_{b,l} m_bl ‖W h_s,bl − h_t,bl‖² / (D_t · Σ_{b,l} m_bl).

    Averaged over real tokens (pooled across the batch) and the hidden dimension only, so padding of any length or
    content leaves the loss unchanged. W is the optional `projection` (e.g. nn.Linear(D_s, D_t)) for a student
    narrower than the teacher; it trains with the student. Shapes: student_hidden (B, L, D_s); teacher_hidden
    (B, L, D_t); attention_mask (B, L) of 0/1 -> scalar (a zero still attached to the student if no token is real)."""
    if projection is not None:
        student_hidden = projection(student_hidden)
    if student_hidden.shape != teacher_hidden.shape or student_hidden.dim() != 3:
        hint = "" if projection is not None else "; pass a projection (e.g. nn.Linear(D_s, D_t)) when widths differ"
        raise ValueError(f"student hidden states {tuple(student_hidden.shape)} (after projection) and teacher hidden "
                         f"states {tuple(teacher_hidden.shape)} must both be (batch, seq_len, hidden) with equal "
                         f"shapes{hint}")
    batch_size, seq_len, hidden_size = teacher_hidden.shape
    _check_mask(attention_mask, batch_size, seq_len)
    keep = attention_mask.bool().unsqueeze(-1)  # (B, L, 1)
    difference = student_hidden.float() - teacher_hidden.detach().float()
    # Zero padded positions before squaring, so whatever they hold (even inf/nan) adds no loss or gradient.
    difference = torch.where(keep, difference, torch.zeros_like(difference))
    num_values = keep.sum() * hidden_size
    return difference.pow(2).sum() / num_values.clamp_min(1)


def layer_map(num_student_layers: int, num_teacher_layers: int) -> list[tuple[int, int]]:
    """Uniform "every k-th layer" map from student to teacher hidden-state indices, as HF `output_hidden_states`
    counts them (0 = embeddings, i = output of layer i): student i -> teacher round(i · N_t / N_s) for i = 1..N_s, so
    the last layers always meet. Halves round up (not Python's round-half-to-even) so the map is predictable, e.g.
    (3, 6) -> [(1, 2), (2, 4), (3, 6)] and (4, 6) -> [(1, 2), (2, 3), (3, 5), (4, 6)]."""
    for name, value in (("num_student_layers", num_student_layers), ("num_teacher_layers", num_teacher_layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if num_student_layers > num_teacher_layers:
        raise ValueError(f"the student has more layers ({num_student_layers}) than the teacher ({num_teacher_layers}); "
                         "layer_map only maps a shallower student onto a deeper teacher")
    # Integer arithmetic: floor(x + 1/2) with x = i·N_t/N_s, free of float rounding surprises.
    return [(i, (2 * i * num_teacher_layers + num_student_layers) // (2 * num_student_layers))
            for i in range(1, num_student_layers + 1)]


def _check_mapping(mapping: Sequence[tuple[int, int]], num_student: int, num_teacher: int, lowest: int) -> None:
    if len(mapping) == 0:
        raise ValueError("mapping is empty; build one with layer_map(num_student_layers, num_teacher_layers)")
    for student_index, teacher_index in mapping:
        if not (lowest <= student_index < num_student + lowest and lowest <= teacher_index < num_teacher + lowest):
            raise ValueError(f"mapping pair ({student_index}, {teacher_index}) is out of range: valid student indices "
                             f"are {lowest}..{num_student + lowest - 1}, teacher indices "
                             f"{lowest}..{num_teacher + lowest - 1}")


def feature_loss(student_hidden_states: Sequence[Tensor], teacher_hidden_states: Sequence[Tensor],
                 attention_mask: Tensor, mapping: Sequence[tuple[int, int]],
                 projections: Sequence[nn.Module] | None = None) -> Tensor:
    """Mean `hidden_state_loss` over mapped pairs: L = (1/|M|) Σ_{(s,t)∈M} hidden_state_loss(h_s[s], h_t[t]).
    Hidden states: HF `output_hidden_states` tuples of (B, L, D) (index 0 = embeddings), indexed directly by the
    mapping pairs (`layer_map`); attention_mask (B, L); projections: None, or one module per mapping pair."""
    _check_mapping(mapping, len(student_hidden_states), len(teacher_hidden_states), lowest=0)
    if projections is not None and len(projections) != len(mapping):
        raise ValueError(f"got {len(projections)} projections for {len(mapping)} mapped layer pairs; pass one per "
                         "pair or None")
    losses = [hidden_state_loss(student_hidden_states[student_index], teacher_hidden_states[teacher_index],
                                attention_mask, None if projections is None else projections[pair_index])
              for pair_index, (student_index, teacher_index) in enumerate(mapping)]
    return torch.stack(losses).mean()


def attention_loss(student_attentions: Sequence[Tensor], teacher_attentions: Sequence[Tensor],
                   attention_mask: Tensor, mapping: Sequence[tuple[int, int]]) -> Tensor:
    """KL between attention distributions of mapped layers, per query row:
    L = (1/|M|) Σ_{(s,t)∈M} Σ_{b,q} m_bq · (1/H) Σ_h KL(A_t[t],bhq ‖ A_s[s],bhq) / Σ_{b,q} m_bq,
    with KL(a ‖ b) = Σ_k a_k (log max(a_k, ε) − log max(b_k, ε)).

    Padded query rows (m_bq = 0) are masked out; padded keys need none, their probability being ~0 in both models. With
    different head counts there is no head-to-head pairing, so both are first averaged over heads (H = 1 above); by
    convexity that KL is no larger than the per-head one, so the two settings' losses differ in scale. Shapes:
    ``output_attentions`` tuples over layers of (B, H, L, L) probabilities; mapping pairs are 1-based layer numbers
    (`layer_map`), so layer s is `attentions[s - 1]`; attention_mask (B, L) of 0/1 -> scalar."""
    _check_mapping(mapping, len(student_attentions), len(teacher_attentions), lowest=1)
    losses = []
    for student_layer, teacher_layer in mapping:
        student_attention = student_attentions[student_layer - 1].float()  # (B, H_s, L, L)
        teacher_attention = teacher_attentions[teacher_layer - 1].detach().float()  # (B, H_t, L, L)
        if student_attention.dim() != 4 or teacher_attention.dim() != 4:
            raise ValueError(f"attentions must be (batch, heads, seq_len, seq_len); layer pair ({student_layer}, "
                             f"{teacher_layer}) has shapes {tuple(student_attention.shape)} and "
                             f"{tuple(teacher_attention.shape)}")
        batch_size, _, seq_len, _ = teacher_attention.shape
        if (student_attention.shape[0], *student_attention.shape[2:]) != (batch_size, seq_len, seq_len):
            raise ValueError(f"student attention {tuple(student_attention.shape)} and teacher attention "
                             f"{tuple(teacher_attention.shape)} of layer pair ({student_layer}, {teacher_layer}) "
                             "differ in batch size or sequence length")
        _check_mask(attention_mask, batch_size, seq_len)
        if student_attention.shape[1] != teacher_attention.shape[1]:
            student_attention = student_attention.mean(dim=1, keepdim=True)  # (B, 1, L, L)
            teacher_attention = teacher_attention.mean(dim=1, keepdim=True)
        log_ratio = teacher_attention.clamp_min(ATTENTION_EPS).log() - student_attention.clamp_min(ATTENTION_EPS).log()
        row_kl = (teacher_attention * log_ratio).sum(dim=-1).mean(dim=1)  # (B, L), mean over heads
        keep = attention_mask.bool()  # (B, L)
        row_kl = torch.where(keep, row_kl, torch.zeros_like(row_kl))
        losses.append(row_kl.sum() / keep.sum().clamp_min(1))
    return torch.stack(losses).mean()


def window_attention(attention: Tensor, window: int) -> Tensor:
    """Attention probabilities (B, H, L, L) restricted to the first ``window`` queries and keys, each row renormalised
    to sum to 1 over the window -> (B, H, W, W). The identity when W = L."""
    if attention.shape[-1] == window:
        return attention
    inside = attention[:, :, :window, :window].float()
    return inside / inside.sum(dim=-1, keepdim=True).clamp_min(ATTENTION_EPS)

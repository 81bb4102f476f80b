"""A batch of sparse rows (users' interaction vectors) in CSR form, for the input layers that read them
without a dense (batch x items) matrix. torch only."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class SparseRows:
    """`len(offsets)` rows over `n_cols` columns: row r holds `values[offsets[r]:offsets[r+1]]` at columns
    `cols[...]` (CSR without the final offset, as ``embedding_bag`` takes it)."""

    def __init__(self, offsets: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n_cols: int):
        self.offsets, self.cols, self.values, self.n_cols = offsets, cols, values, n_cols

    @property
    def shape(self) -> tuple[int, int]:
        return (self.offsets.shape[0], self.n_cols)

    @property
    def device(self) -> torch.device:
        return self.values.device

    def rows(self) -> torch.Tensor:
        """The row of every stored value."""
        ends = torch.cat([self.offsets[1:], self.offsets.new_tensor([self.cols.shape[0]])])
        return torch.repeat_interleave(torch.arange(len(self.offsets), device=self.device), ends - self.offsets)

    def with_values(self, values: torch.Tensor) -> "SparseRows":
        return SparseRows(self.offsets, self.cols, values, self.n_cols)

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.shape, dtype=self.values.dtype, device=self.device)
        out[self.rows(), self.cols] = self.values
        return out

    def matmul(self, weight: torch.Tensor) -> torch.Tensor:
        """rows @ weight for an item-major `weight` (n_cols x d): one gather-and-sum per stored value, the
        cost of the non-zeros, not of the columns (its weight gradient likewise)."""
        return F.embedding_bag(self.cols, weight, self.offsets, per_sample_weights=self.values.to(weight.dtype),
                               mode="sum")

    def add_to(self, dense: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """dense + scale * rows, as a new tensor."""
        out = dense.clone()
        out.index_put_((self.rows(), self.cols), scale * self.values.to(out.dtype), accumulate=True)
        return out

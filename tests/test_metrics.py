import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from scnode.core import metrics


@pytest.mark.parametrize("seed", range(6))
def test_auprc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    truth = (rng.random((6, 7)) < 0.3).astype(int)
    truth[0, 1] = 1
    truth[0, 2] = 0
    scores = rng.integers(0, 4, size=(6, 7)) * rng.choice([-1.0, 1.0], size=(6, 7))  # many ties, signed
    expected = average_precision_score(truth.ravel(), np.abs(scores).ravel())
    assert metrics.auprc(scores, truth) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_auroc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(100 + seed)
    truth = (rng.random((5, 8)) < 0.4).astype(int)
    truth[0, 0], truth[0, 1] = 1, 0
    scores = np.round(rng.random((5, 8)), 1)
    assert metrics.auroc(scores, truth) == pytest.approx(roc_auc_score(truth.ravel(), scores.ravel()), abs=1e-12)


def test_exclude_diagonal_matches_sklearn_off_diagonal():
    rng = np.random.default_rng(7)
    truth = (rng.random((5, 5)) < 0.4).astype(int)
    truth[0, 1], truth[1, 0] = 1, 0
    scores = np.round(rng.random((5, 5)), 1)
    off = ~np.eye(5, dtype=bool)
    assert metrics.auprc(scores, truth, exclude_diagonal=True) == pytest.approx(
        average_precision_score(truth[off], scores[off]), abs=1e-12
    )
    assert metrics.auroc(scores, truth, exclude_diagonal=True) == pytest.approx(
        roc_auc_score(truth[off], scores[off]), abs=1e-12
    )


def test_shd_counts_mismatches():
    truth = np.array([[1, 0, 1], [0, 0, 1]])
    support = np.array([[0.5, 0.0, 0.0], [0.2, 0.0, -3.0]])  # misses (0, 2), adds (1, 0)
    assert metrics.shd(support, truth) == 2
    assert metrics.shd(truth, truth) == 0
    assert metrics.shd(np.zeros((2, 3)), truth) == 3


def test_epr_and_auprc_ratio_by_hand():
    # 2 x 2 off-diagonal entries: (0, 1) and (1, 0); one true edge -> density 1/2
    truth = np.array([[1, 1], [0, 1]])
    good = np.array([[9.0, 0.8], [0.1, 9.0]])  # true edge ranked first
    bad = np.array([[9.0, 0.1], [0.8, 9.0]])  # true edge ranked last
    assert metrics.epr(good, truth) == pytest.approx(2.0)  # precision 1 / density 0.5
    assert metrics.epr(bad, truth) == pytest.approx(0.0)
    assert metrics.auprc_ratio(good, truth) == pytest.approx(2.0)  # AP 1 / 0.5
    assert metrics.auprc_ratio(bad, truth) == pytest.approx(1.0)  # AP 1/2 / 0.5


def test_epr_top_k_by_hand():
    # 3 x 3 without diagonal: 6 entries, 2 true edges (density 1/3); top-2 holds one true edge
    truth = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    scores = np.array([[0, 0.9, 0.8], [0.1, 0, 0.3], [0.2, 0.4, 0]])
    # order: (0,1) 0.9 T, (0,2) 0.8 F, (2,1) 0.4 F, (1,2) 0.3 T
    assert metrics.epr(scores, truth) == pytest.approx((1 / 2) / (1 / 3))
    # AP = 1/2 * 1 + 1/2 * 2/4
    assert metrics.auprc(scores, truth, exclude_diagonal=True) == pytest.approx(0.75)
    assert metrics.auprc_ratio(scores, truth) == pytest.approx(0.75 * 3)


def test_epr_counts_ties_and_zeros_as_beeline():
    """Ties at the k-th score are all predictions, zero scores none: the order of the pairs does not matter."""
    truth = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])  # 2 true edges among 6 pairs: density 1/3
    # a sparse graph: one non-zero pair (false), the true edges tied with the rest at zero
    sparse = np.array([[0, 0, 0.5], [0, 0, 0], [0, 0, 0]])
    assert metrics.epr(sparse, truth) == pytest.approx(0.0)  # index order would have picked (0, 1)
    assert metrics.epr(np.zeros((3, 3)), truth) == 0.0  # no prediction at all
    # three pairs tied at the k-th score: all three predicted, one true -> precision 1/3 + the strict top
    tied = np.array([[0, 0.9, 0.5], [0.5, 0, 0.5], [0, 0, 0]])  # (0,1) T 0.9; (0,2) F, (1,0) F, (1,2) T at 0.5
    assert metrics.epr(tied, truth) == pytest.approx((2 / 4) / (1 / 3))
    order = [2, 0, 1]  # the same pairs in another gene order: the same EPR
    for scores in (sparse, tied):
        moved = metrics.epr(scores[np.ix_(order, order)], truth[np.ix_(order, order)])
        assert moved == pytest.approx(metrics.epr(scores, truth))
    with pytest.raises(ValueError, match="no edges"):
        metrics.epr(tied, np.zeros((3, 3)))


def test_sign_accuracy_counts_the_top_k_as_epr_does():
    """``evaluate_grn``'s signs are read on EPR's predictions: ties at the k-th score all count, in any order."""
    import anndata
    import pandas as pd

    import scnode as scn

    genes = ["a", "b", "c"]
    truth = pd.DataFrame([[0, 1, 0], [0, 0, -1], [0, 0, 0]], index=genes, columns=genes)  # a -> b +, b -| c
    # (a, b) strongest with the right sign; (a, c) false and (b, c) true with the wrong sign, tied at the k-th
    learned = np.array([[0, 0.9, 0.5], [0, 0, 0.5], [0, 0, 0]])
    for order in ([0, 1, 2], [2, 1, 0]):
        adata = anndata.AnnData(np.zeros((2, 3), np.float32), var=pd.DataFrame(index=[genes[i] for i in order]))
        adata.varp["net"] = learned[np.ix_(order, order)]
        res = scn.tl.evaluate_grn(adata, truth.iloc[order, order], key="net")
        assert res["sign_accuracy"] == pytest.approx(0.5)  # index order first would have read (a, b) alone: 1.0
        assert res["epr"] == pytest.approx((2 / 3) / (2 / 6))


def test_auprc_all_tied_is_density():
    truth = np.array([[1, 0, 0, 1]])
    assert metrics.auprc(np.ones((1, 4)), truth) == pytest.approx(0.5)
    assert metrics.auroc(np.ones((1, 4)), truth) == pytest.approx(0.5)


def test_mse():
    assert metrics.mse(np.array([1.0, 2.0]), np.array([0.0, 4.0])) == pytest.approx(2.5)


@pytest.mark.parametrize(
    "fn", [metrics.auprc, metrics.auroc, metrics.epr, metrics.auprc_ratio, metrics.shd, metrics.mse]
)
def test_shape_mismatch_raises(fn):
    with pytest.raises(ValueError):
        fn(np.ones((2, 3)), np.ones((3, 2)))


def test_degenerate_truth_raises():
    with pytest.raises(ValueError):
        metrics.auprc(np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError):
        metrics.auroc(np.ones((2, 2)), np.ones((2, 2)))

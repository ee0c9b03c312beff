"""``search_dir``: a penalty search keeps its fits in a directory, and an interrupted search resumes from them."""

import numpy as np
import pandas as pd
import pytest
from helpers import FAST, cells

import scnode as scn
from scnode.core import FitInterrupted, History
from scnode.tl import _select, _store
from scnode.tl._search_dir import fingerprint
from scnode.tl._setup import setup

SEARCH = {"lineage_key": "lineage", **FAST, "n_iter": 40, "refit_iter": 8, "copy": True}


def _interrupt() -> FitInterrupted:
    return FitInterrupted(
        iteration=1,
        total=40,
        best_iteration=0,
        refitted=False,
        refit_pending=True,
        checkpoint=None,
        checkpoint_file=None,
        history=History(),
    )


def _same_results(a, b) -> None:
    for key in ("scnode", "scnode_sign", "scnode_path", "scnode_path_sign"):
        np.testing.assert_array_equal(np.asarray(a.varp[key]), np.asarray(b.varp[key]))
    np.testing.assert_array_equal(a.layers["scnode_fitted"], b.layers["scnode_fitted"])
    table_a = pd.DataFrame(a.uns["scnode"]["path"]["table"]).drop(columns="seconds")
    table_b = pd.DataFrame(b.uns["scnode"]["path"]["table"]).drop(columns="seconds")
    pd.testing.assert_frame_equal(table_a, table_b, check_dtype=False)


@pytest.mark.parametrize("on_disk", [False, True], ids=["fits in memory", "fits read from the directory"])
def test_an_interrupted_search_resumes_from_its_directory_with_the_results_of_a_whole_one(
    tmp_path, monkeypatch, on_disk
):
    adata = cells()
    whole = scn.tl.fit_sparse_ode(adata, **SEARCH)
    written, write = [], _store.FitStore._write
    if on_disk:  # every fit is large: the search reads its fits from the directory, not from a copy of its own
        monkeypatch.setattr(_store, "SPILL_BYTES", 0)
        monkeypatch.setattr(_store.FitStore, "_write", lambda self, model: written.append(model) or write(self, model))
    n_fits = len(whole.uns["scnode"]["path"]["table"]["lam"])
    assert n_fits >= 4
    fitted, real = [], _select._fit_task

    def interrupted_at_the_third(lam, *args):
        if len(fitted) == 2:
            raise _interrupt()
        fitted.append(lam)
        return real(lam, *args)

    monkeypatch.setattr(_select, "_fit_task", interrupted_at_the_third)
    with pytest.raises(FitInterrupted, match=r"The fits that ended are kept in .*reads them back"):
        scn.tl.fit_sparse_ode(adata, search_dir=tmp_path, **SEARCH)
    [kept] = list(tmp_path.iterdir())  # one subdirectory: the search's fingerprint
    assert sorted(p.name for p in kept.glob("*.json")) == sorted(f"lam_{lam!r}.json" for lam in fitted)

    def counted(lam, *args):
        fitted.append(lam)
        return real(lam, *args)

    monkeypatch.setattr(_select, "_fit_task", counted)
    first_two, fitted[:] = list(fitted), []
    resumed = scn.tl.fit_sparse_ode(adata, search_dir=tmp_path, **SEARCH)
    assert len(fitted) == n_fits - 2 and not set(fitted) & set(first_two)  # only the fits not kept
    assert len(written) == on_disk  # the store's own copy: the refit of the selected fit only
    _same_results(resumed, whole)
    fitted.clear()
    again = scn.tl.fit_sparse_ode(adata, search_dir=tmp_path, **SEARCH)
    assert fitted == []  # every fit read back
    _same_results(again, whole)
    assert len(list(kept.glob("*.pt"))) == n_fits

    # a damaged record names its file and what to do; a file given as the directory is refused
    record = kept / "lam_0.1.json"
    record.write_text("{not json")
    with pytest.raises(ValueError, match=r"lam_0\.1\.json is not a record .* delete it"):
        scn.tl.fit_sparse_ode(adata, search_dir=tmp_path, **SEARCH)
    with pytest.raises(ValueError, match="is a file, not a directory"):
        scn.tl.fit_sparse_ode(adata, search_dir=record, **SEARCH)


@pytest.mark.parametrize("call", [{"lam": 0.1}, {"method": "base"}], ids=["fixed lam", "base"])
def test_search_dir_without_a_search_is_a_clear_error(tmp_path, call):
    with pytest.raises(ValueError, match="search_dir keeps the fits of the automatic penalty search"):
        scn.tl.fit_sparse_ode(cells(), search_dir=tmp_path, **{**SEARCH, **call})
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_search_without_a_directory_says_how_to_keep_its_fits(monkeypatch):
    monkeypatch.setattr(_select, "_fit_task", lambda *args: (_ for _ in ()).throw(_interrupt()))
    with pytest.raises(FitInterrupted, match="Pass search_dir='<directory>' to keep a search's fits"):
        scn.tl.fit_sparse_ode(cells(), **SEARCH)


def test_the_fingerprint_changes_with_what_a_fit_depends_on_and_only_with_that():
    adata = cells()
    kw = {k: v for k, v in SEARCH.items() if k != "copy"}
    st = setup(adata, **kw)

    def of(st, fit_kwargs=None, window="same", build=None):
        model = (build or st.model)(1.0)
        return fingerprint(model, st.ts, None, st.window if window == "same" else window, fit_kwargs or st.fit_kwargs)

    base = of(st)
    assert of(st) == base
    assert fingerprint(st.model(3.0), st.ts, None, st.window, st.fit_kwargs) == base  # lambda is the fit's own
    assert of(st, {**st.fit_kwargs, "progress_bar": not st.fit_kwargs["progress_bar"]}) == base
    assert of(st, {**st.fit_kwargs, "lr": 0.02}) != base
    assert of(st, window=None) != base
    assert of(setup(adata, **{**kw, "random_state": 1})) != base  # other initial weights
    moved = adata.copy()
    moved.X[0, 0] += 0.5
    assert of(setup(moved, **kw)) != base  # other data
    assert of(setup(adata, **{**kw, "regulators": ["g0"]})) != base  # other candidate edges


def test_lambda_path_keeps_its_fits_too_but_not_with_another_anndata_as_validation(tmp_path):
    adata = cells()
    kw = {k: v for k, v in SEARCH.items() if k != "copy"}
    table = scn.tl.lambda_path(adata, [0.01, 0.1], max_extend=0, search_dir=tmp_path, **kw)
    [kept] = list(tmp_path.iterdir())
    assert len(list(kept.glob("*.json"))) == len(table)
    with pytest.raises(ValueError, match="search_dir cannot be combined with a validation"):
        scn.tl.lambda_path(adata, [0.01], validation=cells(seed=1), search_dir=tmp_path, **kw)

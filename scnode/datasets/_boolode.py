"""BEELINE's synthetic networks: Boolean models read from the data folder, simulated as BoolODE describes.

BEELINE (Pratapa et al., Nature Methods 2020) scores network inference on six small Boolean models
simulated with BoolODE: each Boolean rule becomes a Hill-type rate of the gene's mRNA, which makes
protein, with chemical-Langevin noise, and cells are sampled along many noisy simulations. The
simulator here is written from that published description (no BoolODE code): each gene has an mRNA
``x`` and a protein ``y``,

    dx_i = (m f_i(y) - l_x x_i) dt + s (sqrt(m f_i(y)) dW_1 - sqrt(l_x x_i) dW_2)
    dy_i = (r x_i - l_y y_i) dt + s (sqrt(r x_i) dW_3 - sqrt(l_y y_i) dW_4),

where ``f_i`` is the probability that gene i's rule is true when each regulator j is on
independently with probability ``w_j / (1 + w_j)``, ``w_j = strength_ij (y_j / k)^n``: the
normalised sum over the rule's truth table of the thermodynamic (Hill) weights of its true rows.
Cells express the mRNA; a knocked-out gene makes none (its mRNA and protein start and stay at 0).
"""

from __future__ import annotations

import ast
import itertools
import os
import re
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from ._files import fetch, github_raw

REPO, COMMIT = "Murali-group/BoolODE", "ba8884a"
MODELS: dict[str, tuple[str, str, str]] = {
    "linear": (
        "f6e6f119f1dd64e3418ab57dfca1faf289d659f882b3e0215541898e35a52452",
        "3c92c0b84ed78993944ae74f6fe47720eb1ac8a5945dd2ec4478160684a2adaa",
        "33ca98b9c88c073309569a2cf96392e29a79574b0ab1a03ff924f37f888f69f0",
    ),
    "linear-long": (
        "9075950fe16a9ac3613d28afb9805c6388345098b3c5cc4e6203b4916120a514",
        "3c92c0b84ed78993944ae74f6fe47720eb1ac8a5945dd2ec4478160684a2adaa",
        "bb0bd739d51c9b773db8b9c9802a62c71b26055616ab5e2c55d93afba9f6a540",
    ),
    "cycle": (
        "0ee09e6c322c449eeffb9a9d7cb8b3bd3609a5a121c6cf25c8fa16b13f47399d",
        "16d296d78c90c281311e99649856d1e5eebb7483ca4d5e5df2b15f94d596c3b3",
        "2e9634782937f35dfeac672650f31eb64548e70b04796bdf7230b65eb08c7913",
    ),
    "bifurcating": (
        "a68595f05d25efbab76eb44419a8dad2f4f509d091b5b7d599885b49cabb4959",
        "3c92c0b84ed78993944ae74f6fe47720eb1ac8a5945dd2ec4478160684a2adaa",
        "f8a9f24f291978fe32968724e66fce94cbf5cf7017696e0e2d9711e28c08e903",
    ),
    "bifurcating-converging": (
        "6a5e1b4cc209f698ef58bd78a30d3cd2551d605e16ab73d3f59658e4eddaadc6",
        "3c92c0b84ed78993944ae74f6fe47720eb1ac8a5945dd2ec4478160684a2adaa",
        "8d211fe7b566bcda11dbceb4d00772d5831f57cbae812323e53f69c0f490207c",
    ),
    "trifurcating": (
        "755b2186a8872b76ee729ee18ad22540e3a2f4bdecd8c0f84d75f2948b799b84",
        "3c92c0b84ed78993944ae74f6fe47720eb1ac8a5945dd2ec4478160684a2adaa",
        "cf2b7ec402129fd5a90ef8c7fbdf7b055db92b37b515df4b14e189ca965b8c0e",
    ),
}
"""SHA-256 of each model's rules, initial conditions and interaction strengths (``boolode`` data folder)."""
T_MAX = {
    "linear": 7.0,
    "linear-long": 20.0,
    "cycle": 8.0,
    "bifurcating": 5.0,
    "bifurcating-converging": 6.0,
    "trifurcating": 8.0,
    "krumsiek11": 4.0,
}
"""Simulated time per model (others: 5): long enough for its cascade to settle (proteins turn over in about 1)."""
KINETICS = {"m": 20.0, "l_x": 10.0, "r": 10.0, "l_y": 1.0, "n": 10.0}
"""Transcription, mRNA decay, translation, protein decay, Hill coefficient; ``k`` is half the largest protein level."""
_TOKEN = re.compile(r"\s*(\(|\)|and\b|or\b|not\b|[A-Za-z_][A-Za-z0-9_.]*)")


@dataclass
class BooleanModel:
    """A Boolean network model: rules, initial state and interaction strengths.

    Attributes
    ----------
    name
        Model name.
    genes
        Genes, in the rules file's order.
    regulators
        Per gene, the genes its rule reads (in order of appearance).
    tables
        Per gene, its rule's truth table over its regulators: ``(2,) * n_regulators`` booleans.
    on
        Genes that start on.
    strengths
        ``{(target, regulator): factor}`` on the regulator's Hill weight (default 1).
    """

    name: str
    genes: list[str]
    regulators: dict[str, list[str]]
    tables: dict[str, np.ndarray]
    on: list[str]
    strengths: dict[tuple[str, str], float]

    def network(self) -> pd.DataFrame:
        """Return the signed true network, regulators x targets: +1 activation, -1 repression, 0 no edge.

        A regulator's sign is that of its mean effect on its target's truth table (on minus off).
        """
        net = pd.DataFrame(0, index=self.genes, columns=self.genes, dtype=int)
        for target, regs in self.regulators.items():
            table = self.tables[target].astype(float)
            for axis, reg in enumerate(regs):
                effect = np.take(table, 1, axis=axis).mean() - np.take(table, 0, axis=axis).mean()
                net.loc[reg, target] = int(np.sign(effect)) if effect != 0 else 1
        return net


def _parse_rule(rule: str, genes: list[str], target: str) -> tuple[list[str], str]:
    """Check that ``rule`` uses only genes, ``and``, ``or``, ``not`` and brackets.

    Returns its genes (in order of appearance) and the rule as a Python expression over ``r0``,
    ``r1``, ... (gene names such as ``Pu.1`` are no Python names).
    """
    pos, names, expr = 0, [], []
    while pos < len(rule.rstrip()):
        match = _TOKEN.match(rule, pos)
        if match is None:
            raise ValueError(f"The rule of {target!r} ({rule!r}) has an unexpected character at {pos}.")
        token = match.group(1)
        if token in ("(", ")", "and", "or", "not"):
            expr.append(token)
        else:
            if token not in genes:
                raise ValueError(f"The rule of {target!r} ({rule!r}) reads {token!r}, which is no gene of the model.")
            if token not in names:
                names.append(token)
            expr.append(f"r{names.index(token)}")
        pos = match.end()
    if not expr:
        raise ValueError(f"The rule of {target!r} is empty.")
    return names, " ".join(expr)


def _truth_table(expr: str, n_regulators: int) -> np.ndarray:
    code = compile(ast.parse(expr, mode="eval"), "<rule>", "eval")
    table = np.zeros((2,) * n_regulators, bool)
    for bits in itertools.product((0, 1), repeat=n_regulators):
        table[bits] = bool(eval(code, {"__builtins__": {}}, {f"r{i}": bool(b) for i, b in enumerate(bits)}))
    return table


def rules_model(
    name: str, rules: dict[str, str], on: list[str], strengths: dict[tuple[str, str], float] | None = None
) -> BooleanModel:
    """Build a :class:`BooleanModel` from ``{gene: rule}`` (Python-style ``and``/``or``/``not`` over gene names)."""
    genes = list(rules)
    unknown = [g for g in on if g not in genes]
    if unknown:
        raise ValueError(f"Genes {unknown} start on but have no rule.")
    regulators, tables = {}, {}
    for gene, rule in rules.items():
        regulators[gene], expr = _parse_rule(rule, genes, gene)
        tables[gene] = _truth_table(expr, len(regulators[gene]))
    return BooleanModel(name, genes, regulators, tables, list(on), dict(strengths or {}))


def boolean_model(name: str = "linear", *, data_dir: str | os.PathLike | None = None) -> BooleanModel:
    """Read one of BEELINE's six synthetic Boolean models.

    The model files are those of the public repository Murali-group/BoolODE (commit ba8884a, folder
    ``data``) from which BEELINE simulated its synthetic benchmark.

    Parameters
    ----------
    name
        ``"linear"``, ``"linear-long"``, ``"cycle"``, ``"bifurcating"``, ``"bifurcating-converging"``
        or ``"trifurcating"``.
    data_dir
        Folder holding ``boolode/dyn-<name>.txt`` and its ``_ics`` and ``_strengths`` files; default
        ``SCNODE_DATA_DIR``, else they are downloaded from GitHub once (SHA-256 checked).

    Returns
    -------
    A :class:`BooleanModel`.
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {list(MODELS)}.")
    paths = [
        fetch("boolode", f"dyn-{name}{s}.txt", digest, github_raw(REPO, COMMIT, f"data/dyn-{name}{s}.txt"), data_dir)
        for s, digest in zip(("", "_ics", "_strengths"), MODELS[name], strict=True)
    ]
    table = pd.read_csv(paths[0], sep="\t")
    rules = {str(g).strip(): str(r) for g, r in zip(table["Gene"], table["Rule"], strict=True)}
    ics = pd.read_csv(paths[1], sep="\t")
    on = []
    for listed, values in zip(ics["Genes"], ics["Values"], strict=True):
        for gene, value in zip(ast.literal_eval(listed), ast.literal_eval(values), strict=True):
            if value:
                on.append(str(gene))
    strengths_table = pd.read_csv(paths[2], sep="\t")
    strengths = {
        (str(t), str(r)): float(s)
        for t, r, s in zip(strengths_table["Gene1"], strengths_table["Gene2"], strengths_table["Strength"], strict=True)
    }
    return rules_model(name, rules, on, strengths)


KRUMSIEK11_ON = ("Gata2", "Cebpa", "Pu.1")
"""The progenitor state scanpy's krumsiek11 simulation starts from (these three at about 0.8, the rest at 0)."""


def krumsiek11_boolean() -> BooleanModel:
    """Scanpy's krumsiek11 myeloid model (11 genes; Krumsiek et al. 2011) as a :class:`BooleanModel`.

    The rules of scanpy's model file, started from the progenitor state (:data:`KRUMSIEK11_ON`), for
    :func:`simulate_boolean` (BoolODE-type kinetics, knockouts) instead of scanpy's own simulation.
    """
    import scanpy as sc

    path = os.path.join(os.path.dirname(sc.__file__), "sim_models", "krumsiek11.txt")
    rules = {}
    with open(path) as handle:
        for line in handle:
            if line.startswith("# coupling list"):
                break
            if "=" in line and not line.startswith("#"):
                gene, rule = line.split("=", 1)
                rules[gene.strip()] = rule.strip()
    return rules_model("krumsiek11", rules, list(KRUMSIEK11_ON))


def random_boolean_model(
    n_genes: int = 60, *, n_sources: int = 3, max_regulators: int = 3, p_repress: float = 0.3, seed: int = 0
) -> BooleanModel:
    """Draw a random sparse regulatory network of ``n_genes``, for :func:`simulate_boolean`.

    Genes are ordered; the first ``n_sources`` keep themselves on (rule: themselves) and start on.
    Each further gene reads 1 to ``max_regulators`` genes drawn among those before it, each a
    repressor with probability ``p_repress`` (at least one an activator), and is on when any
    activator is on and no repressor (``(a1 or a2) and not (r1 or r2)``): a cascade in which
    repressors switch genes off again.
    """
    if n_genes <= n_sources or n_sources < 1 or max_regulators < 1:
        raise ValueError(
            f"Need n_genes > n_sources >= 1 and max_regulators >= 1, got {n_genes}, {n_sources}, {max_regulators}."
        )
    rng = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(n_genes)]
    rules = {g: g for g in genes[:n_sources]}
    for i in range(n_sources, n_genes):
        regs = rng.choice(i, size=min(i, int(rng.integers(1, max_regulators + 1))), replace=False)
        repress = rng.random(len(regs)) < p_repress
        if repress.all():  # at least one activator: a gene only of repressors is on from the start
            repress[0] = False
        act = " or ".join(genes[j] for j in regs[~repress])
        rep = " or ".join(genes[j] for j in regs[repress])
        rules[genes[i]] = f"({act})" + (f" and not ({rep})" if rep else "")
    return rules_model(f"random{n_genes}", rules, genes[:n_sources])


def _rule_probability(model: BooleanModel, protein: np.ndarray, k: float, n: float) -> np.ndarray:
    """``f(y)`` of every gene for proteins ``(..., genes)``: the chance its rule is true (see the module)."""
    index = {g: i for i, g in enumerate(model.genes)}
    out = np.zeros_like(protein)
    for i, gene in enumerate(model.genes):
        regs = model.regulators[gene]
        weights = [model.strengths.get((gene, r), 1.0) * (protein[..., index[r]] / k) ** n for r in regs]
        on = [w / (1.0 + w) for w in weights]
        for bits in itertools.product((0, 1), repeat=len(regs)):
            if model.tables[gene][bits]:
                term = np.ones(protein.shape[:-1])
                for bit, p in zip(bits, on, strict=True):
                    term = term * (p if bit else 1.0 - p)
                out[..., i] += term
    return out


def simulate_boolean(
    model: BooleanModel | str,
    *,
    n_cells: int = 1000,
    n_simulations: int = 10,
    knockouts: tuple[str, ...] | list[str] = (),
    t_max: float | None = None,
    noise: float = 0.1,
    dt: float = 0.01,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
) -> ad.AnnData:
    """Simulate cells of a Boolean model (BEELINE's synthetic protocol; equations in :mod:`scnode.datasets._boolode`).

    Each simulation starts from the model's initial state (genes listed on: mRNA ``m / l_x``,
    protein ``r m / (l_x l_y)``; the others 0) and is integrated with Euler-Maruyama steps of ``dt``
    up to ``t_max``; ``n_cells`` cells are drawn at random times, evenly from the simulations. With
    ``knockouts``, each listed gene is knocked out in ``n_simulations`` further simulations of their
    own (the same number of cells each): it makes no mRNA, as in a CRISPR knockout.

    Parameters
    ----------
    model
        A :class:`BooleanModel` or the name of one (read by :func:`boolean_model`).
    n_cells
        Cells per condition (unperturbed, and each knockout).
    n_simulations
        Simulations per condition; each is one ``obs["simulation"]`` category.
    knockouts
        Genes to knock out, one condition each.
    t_max
        Simulated time; default per model (:data:`T_MAX`).
    noise
        Strength ``s`` of the chemical-Langevin noise (0: deterministic).
    dt
        Step of the integration.
    seed
        Random seed.
    data_dir
        Where the model files are (see :func:`boolean_model`).

    Returns
    -------
    AnnData of mRNA levels: ``obs["time"]`` (simulation time, the true pseudotime),
    ``obs["simulation"]`` (``"sim<k>"``: the k-th simulation of each condition, which starts from the
    same state; as ``lineage_key``, with ``perturbation_key="perturbation"``, each condition's cells
    of it become a trajectory of one lineage, scaled together), ``obs["perturbation"]`` (the
    knocked-out gene, NaN for unperturbed cells),
    ``varp["true_network"]`` (signed, regulators x targets, :meth:`BooleanModel.network`) and
    ``uns["boolode"]`` (model and settings).
    """
    if isinstance(model, str):
        model = boolean_model(model, data_dir=data_dir)
    genes = model.genes
    unknown = [g for g in knockouts if g not in genes]
    if unknown:
        raise ValueError(f"Cannot knock out {unknown}: the {model.name!r} model's genes are {genes}.")
    if n_cells < n_simulations or n_simulations < 1:
        raise ValueError(f"Need n_simulations >= 1 and n_cells >= n_simulations, got {n_simulations} and {n_cells}.")
    t_max = T_MAX.get(model.name, 5.0) if t_max is None else float(t_max)
    if -(-n_cells // n_simulations) > round(t_max / dt):
        raise ValueError(
            f"{n_cells} cells from {n_simulations} simulations need more steps than t_max / dt = {t_max / dt:g}."
        )
    kin = KINETICS
    k = kin["m"] * kin["r"] / (kin["l_x"] * kin["l_y"]) / 2
    rng = np.random.default_rng(seed)
    steps = round(t_max / dt)
    on = np.isin(genes, model.on)
    blocks = []
    for condition in [None, *knockouts]:
        alive = np.ones(len(genes))
        if condition is not None:
            alive[genes.index(condition)] = 0.0
        x = np.tile(on * kin["m"] / kin["l_x"] * alive, (n_simulations, 1))
        y = x * kin["r"] / kin["l_y"]
        path = np.empty((steps + 1, n_simulations, len(genes)))
        path[0] = x
        for step in range(steps):
            make = kin["m"] * _rule_probability(model, y, k, kin["n"]) * alive
            lose_x, make_y, lose_y = kin["l_x"] * x, kin["r"] * x, kin["l_y"] * y
            dw = rng.standard_normal((4, *x.shape)) * np.sqrt(dt)
            x = x + (make - lose_x) * dt + noise * (np.sqrt(make) * dw[0] - np.sqrt(lose_x) * dw[1])
            y = y + (make_y - lose_y) * dt + noise * (np.sqrt(make_y) * dw[2] - np.sqrt(lose_y) * dw[3])
            x, y = np.maximum(x, 0.0) * alive, np.maximum(y, 0.0) * alive
            path[step + 1] = x
        sims = np.repeat(np.arange(n_simulations), n_cells // n_simulations)
        sims = np.r_[sims, np.arange(n_cells - len(sims))]  # the rest one each to the first simulations
        at = np.empty(n_cells, int)
        for s in range(n_simulations):  # distinct times within a simulation
            cells = np.flatnonzero(sims == s)
            at[cells] = rng.choice(np.arange(1, steps + 1), size=len(cells), replace=False)
        blocks.append((path[at, sims], at * dt, sims, condition))
    obs = pd.DataFrame(
        {
            "time": np.concatenate([b[1] for b in blocks]),
            "simulation": pd.Categorical([f"sim{s}" for b in blocks for s in b[2]]),
            "perturbation": pd.Categorical([b[3] for b in blocks for _ in b[2]], categories=list(knockouts)),
        }
    )
    obs.index = [f"cell{i}" for i in range(len(obs))]
    x = np.concatenate([b[0] for b in blocks]).astype(np.float32)
    adata = ad.AnnData(x, obs=obs, var=pd.DataFrame(index=genes))
    adata.varp["true_network"] = model.network().to_numpy()
    adata.uns["boolode"] = {
        "model": model.name,
        "t_max": t_max,
        "noise": noise,
        "dt": dt,
        "seed": seed,
        "knockouts": list(knockouts),
        **kin,
    }
    return adata

"""Sphinx configuration of the scnode documentation (myst-nb, book theme, autosummary)."""

from __future__ import annotations

import shutil
from pathlib import Path

import scnode

HERE = Path(__file__).parent
ROOT = HERE.parent

project = "scnode"
author = "scnode developers"
copyright = "2026, scnode developers"
version = release = scnode.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

# The notebooks live in ../tutorials (where users find them); they are copied in at build time.
# Their committed outputs are shown as they are: CI executes them separately (tests/test_tutorials.py).
_tutorials = HERE / "tutorials"
_tutorials.mkdir(exist_ok=True)
for notebook in sorted((ROOT / "tutorials").glob("*.ipynb")):
    shutil.copy2(notebook, _tutorials / notebook.name)
nb_execution_mode = "off"

myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
# .rst first: autosummary writes its pages in the first suffix
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

html_theme = "sphinx_book_theme"
html_title = "scnode"
html_theme_options = {
    "repository_url": "https://github.com/scnode/scnode",
    "use_repository_button": False,
    "show_toc_level": 2,
}

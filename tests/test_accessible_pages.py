"""The page fixes of `_ext/accessible_pages.py` (the browser tests run axe-core on the result)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("accessible_pages",
                                               ROOT / "_ext" / "accessible_pages.py")
pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pages)

BIBLIOGRAPHY = ('<div role="list" class="citation-list">\n'
                '<div class="citation" id="id7" role="doc-biblioentry">\n<span>[1]</span></div>\n'
                '<div class="citation" id="id2" role="doc-biblioentry">\n<span>[2]</span></div>')
ANIMATION = ('<div class="anim-controls">\n    <input id="_anim_slider3e13" type="range" '
             'class="anim-slider"\n           name="points" min="0" max="9" step="1" value="0">')


def test_bibliography_entries_become_list_items():
    fixed = pages.fix_page(BIBLIOGRAPHY)
    assert "doc-biblioentry" not in fixed
    assert fixed.count('role="listitem"') == 2 and 'role="list"' in fixed


def test_animation_slider_gets_a_label_once():
    fixed = pages.fix_page(ANIMATION)
    assert fixed.count('aria-label="Animation frame"') == 1
    assert pages.fix_page(fixed) == fixed


def test_animation_form_loses_its_dead_anchor():
    form = ('<form title="Repetition mode" aria-label="Repetition mode" action="#n" '
            'name="_anim_loop_select3e13"\n          class="anim-state">')
    fixed = pages.fix_page(form)
    assert 'action="#n"' not in fixed and 'name="_anim_loop_select3e13"' in fixed
    assert pages.fix_page(fixed) == fixed


def test_other_markup_is_left_alone():
    other = ('<input id="search" type="search" aria-label="Search"><div class="citation" id="x">'
             '<form action="#n" name="search">')
    assert pages.fix_page(other) == other

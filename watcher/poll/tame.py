"""Whether feed HTML is safe to hand to the sanitiser, and plain text for HTML that is not.

The HTML5 tree builder inside nh3 (html5ever) spends time that grows with the square of
some inputs: it walks the stack of open elements for each tag (150,000 unclosed ``<div>``
take minutes), compares each new formatting element with every open one (``<b title=1>``
``<b title=2>`` …), reopens every formatting element left open at each new block (a
thousand-fold blow-up of ``<p>x</p>``), and copies the text written so far for each
``&`` or no-break space of a text node (a long run of ``&amp;``), and compares each
attribute of a tag with the ones before it (one tag of 40,000 attributes). ``is_tame`` decides
in one linear pass, with a model of those structures, whether the input stays within
bounds that keep the builder fast; ``plain_text`` reads the words out of any input in
linear time, for what is not.

The model errs towards "not tame": HTML that real feeds carry stays far inside the bounds.
"""

from __future__ import annotations

import functools
import html as htmllib
import itertools
import re
from dataclasses import dataclass

from watcher.poll.attributes import attributes_within

MAX_DEPTH = 256  # open elements, reopened formatting elements included
MAX_ELEMENTS = 100_000  # elements the tree builder would create
MAX_STEPS = 1_000_000  # elements looked at while closing or scoping
MAX_TEXT_COST = 20_000_000_000  # sum over text runs of characters x character references
QUICK = 4096  # shorter input is tame whatever it holds
QUICK_TAGS = 512  # input with no more "<" than this is tame unless its text runs are costly


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TAG = re.compile(r"<(/?)([A-Za-z][^\s/>]*)")

VOID = _names(
    "area base basefont bgsound br col embed frame hr img input keygen link meta param"
    " source track wbr"
)
FORMATTING = _names("a b big code em font i nobr s small strike strong tt u")
# HTML's "special" elements: an end tag of another name is ignored when one of these is
# closer to the top of the stack than the element it names.
SPECIAL = _names(
    "address applet area article aside base basefont bgsound blockquote body br button"
    " caption center col colgroup dd details dir div dl dt embed fieldset figcaption figure"
    " footer form frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img"
    " input keygen li link listing main marquee menu meta nav noembed noframes noscript"
    " object ol p param plaintext pre script search section select source style summary"
    " table tbody td template textarea tfoot th thead title tr track ul wbr xmp"
    " foreignobject desc mi mo mn ms mtext annotation-xml"
)
# Elements that bound the scope of an end tag that names a special element.
SCOPE = _names("applet caption html table td th marquee object template")
_BUTTON_SCOPE = SCOPE | {"button"}
_P = frozenset({"p"})
# Start tags that close an open paragraph first (HTML's "close a p element").
_CLOSES_P = _names(
    "address article aside blockquote center details dialog dd dir div dl dt fieldset"
    " figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr li listing main menu"
    " nav ol p plaintext pre search section summary ul xmp"
)
# Start tags that close an open element of their kind: (the kind, what stops the search).
_LIST_ITEM_STOPS = SPECIAL - {"address", "div", "p"}
_TABLE_STOPS = frozenset({"table", "template", "html"})
_SIBLINGS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "li": (frozenset({"li"}), _LIST_ITEM_STOPS),
    "dd": (frozenset({"dd", "dt"}), _LIST_ITEM_STOPS),
    "dt": (frozenset({"dd", "dt"}), _LIST_ITEM_STOPS),
    "tr": (frozenset({"tr"}), _TABLE_STOPS),
    "td": (frozenset({"td", "th"}), _TABLE_STOPS | {"tr"}),
    "th": (frozenset({"td", "th"}), _TABLE_STOPS | {"tr"}),
}
# Elements whose content is text, not markup: the model skips to their end tag.
_RAW_TEXT = frozenset(
    {"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes"}
)


@dataclass
class _Model:
    """The tree builder's stack of open elements, as far as cost goes."""

    stack: list[str]
    open: dict[str, int]
    lingering: int = 0  # formatting elements closed by another end tag: reopened later
    elements: int = 0
    steps: int = 0
    deepest: int = 0

    def push(self, name: str) -> None:
        self.stack.append(name)
        self.open[name] = self.open.get(name, 0) + 1
        self.elements += 1
        self.deepest = max(self.deepest, len(self.stack) + self.lingering)

    def pop_to(self, index: int, name: str) -> None:
        """Pop the elements above ``index`` and the one at it."""
        while len(self.stack) > index:
            popped = self.stack.pop()
            self.open[popped] -= 1
            if popped in FORMATTING and popped != name:
                self.lingering += 1
        self.steps += 1

    def reopen(self) -> None:
        """Text or a new element after formatting elements were closed from outside."""
        for _ in range(self.lingering):
            self.stack.append("b")
            self.open["b"] = self.open.get("b", 0) + 1
        self.elements += self.lingering
        self.lingering = 0

    def find(self, names: frozenset[str], stops: frozenset[str]) -> int | None:
        """The stack index of the nearest open element of ``names`` before any of ``stops``."""
        if not any(self.open.get(name) for name in names):
            return None
        stack = self.stack
        for index in range(len(stack) - 1, -1, -1):
            node = stack[index]
            if node in names:
                self.steps += len(stack) - index
                return index
            if node in stops:
                self.steps += len(stack) - index
                return None
        return None

    def within_bounds(self) -> bool:
        return (
            self.deepest <= MAX_DEPTH and self.elements <= MAX_ELEMENTS and self.steps <= MAX_STEPS
        )


def is_tame(html: str) -> bool:
    """Whether the sanitiser can take ``html`` in time linear in its length."""
    if len(html) < QUICK:
        return True
    if _text_cost(html) > MAX_TEXT_COST or not attributes_within(html):
        return False
    tags = html.count("<")
    if tags <= QUICK_TAGS:
        return True
    if tags - html.count("</") - html.count("<!") > MAX_ELEMENTS:
        return False  # more start tags than elements allowed
    model = _Model([], {})
    raw_text = ""  # inside a script, a style, …: only its end tag counts
    for tag in _TAG.finditer(html):  # lazily: a list of every tag would be large
        closing, written = tag.groups()
        name = written.lower()
        if raw_text:
            if closing and name == raw_text:
                raw_text = ""
        elif closing:
            _close(model, _names_of(name), SCOPE if name in SPECIAL else SPECIAL)
        elif name in _RAW_TEXT:
            model.elements += 1
            raw_text = name
        else:
            _start_tag(model, name)
        if not model.within_bounds():
            return False
    return True


@functools.lru_cache(maxsize=512)
def _names_of(name: str) -> frozenset[str]:
    return frozenset({name})


def _start_tag(model: _Model, name: str) -> None:
    """What HTML's tree builder does to the stack for a start tag, as far as cost goes.

    Only closings HTML always performs are modelled; the others are left out, so the
    model's stack is never shallower than the real one.
    """
    if name in _CLOSES_P:
        _close(model, _P, _BUTTON_SCOPE)
    if name in _SIBLINGS:
        _close(model, *_SIBLINGS[name])
    if name in VOID:
        model.elements += 1
    else:
        model.push(name)
    if model.lingering:
        model.reopen()  # the text that follows reopens closed formatting elements inside it


def _close(model: _Model, names: frozenset[str], stops: frozenset[str]) -> None:
    index = model.find(names, stops)
    if index is not None:
        model.pop_to(index, model.stack[index])


def _text_cost(html: str) -> int:
    """Sum over the runs of text between tags of their length times their ``&`` and
    no-break spaces: the sanitiser copies the text node so far for each of those."""
    marks = html.count("&") + html.count("\xa0")
    if len(html) * marks <= MAX_TEXT_COST:
        return len(html) * marks  # an upper bound already within the limit
    cost = 0
    start = 0
    for tag in itertools.chain(_TAG.finditer(html), (None,)):
        end = len(html) if tag is None else tag.start()
        if end - start > 1024:  # shorter runs cost at most 1024 times their length
            marks = html.count("&", start, end) + html.count("\xa0", start, end)
            cost += (end - start) * marks
        start = end
    return cost


def plain_text(html: str) -> str:
    """The words of any HTML, in one linear pass: tags, comments and scripts removed,
    character references decoded, block boundaries and ``<br>`` kept as line breaks.

    Whitespace is left as it is (``html.collapse_whitespace`` tidies it)."""
    text = _Text()
    position = 0
    lowered = html.lower()
    while (found := _MARKUP.search(html, position)) is not None:
        text.add(html[position : found.start()])
        position = _skip_markup(html, lowered, found.start(), text)
    text.add(html[position:])
    return htmllib.unescape(text.joined())


# What may start markup: a tag, an end tag, a comment or a declaration. A "<" before
# anything else is text.
_MARKUP = re.compile(r"<[A-Za-z/!]")


class _Text:
    """Text pieces and the break between them: a run of tags gives one break, not many."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.gap = ""

    def add(self, piece: str) -> None:
        if piece:
            if self.gap:
                self.parts.append(self.gap)
                self.gap = ""
            self.parts.append(piece)

    def separate(self, mark: str) -> None:
        if mark == "\n" or not self.gap:
            self.gap = mark

    def joined(self) -> str:
        return "".join(self.parts)


def _skip_markup(html: str, lowered: str, start: int, text: _Text) -> int:
    """Skip the tag, comment or script at ``start``; returns where the text goes on."""
    if html.startswith("<!--", start):
        end = html.find("-->", start + 4)
        return len(html) if end < 0 else end + 3
    tag = _TAG.match(html, start)
    if tag is None:
        if html.startswith("<!", start):  # a declaration: up to its ">"
            end = html.find(">", start)
            return len(html) if end < 0 else end + 1
        text.add("<")  # "</" before no name is text
        return start + 1
    end = html.find(">", tag.end())
    if end < 0:
        return len(html)  # a tag cut off at the end: nothing after it is text
    name = tag.group(2).lower()
    text.separate("\n" if name in _LINE_BREAKS else " ")
    if tag.group(1) == "" and name in _DROPPED:
        close = lowered.find(f"</{name}", end)
        return len(html) if close < 0 else close
    return end + 1


_LINE_BREAKS = _names(
    "address article aside blockquote br caption dd details div dl dt figcaption figure"
    " footer h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table td th"
    " tr ul"
)
_DROPPED = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg"})

"""Salary bands as a chart: a PNG for Discord and Slack, a text bar chart for terminals.

Pure: bands in, an `Attachment` out. One horizontal bar per level and article, from the low
to the high figure, labelled with the figures and the article's short name; where the
articles agree on a level the bar is drawn once with both names, where they differ the
bars stand side by side. The image also carries the region note and the sources, and the
alt text says the same in words.

Drawn with Pillow rather than matplotlib: about 22 MB installed against about 175 MB
(matplotlib brings numpy, fontTools and Pillow itself), imported in a fraction of the time
and drawing this chart several times faster (figures in the commit that added this module).
The font is the one Pillow ships (`ImageFont.load_default`), so no system font is needed.

Rendering is cached on the chart's value (`_attachment`), not on a content object: a reload
that changes no band reuses the bytes, one that changes a band draws anew, and no cache
entry can outlive the content it was drawn from under a reused id.
"""
from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from bot.content_types import Band, Content, Region
from bot.replies import Attachment
from bot.text import money

WIDTH = 800  # px; Discord and Slack show it scaled to about half, so text is drawn large
MARGIN = 28
TEXT_BAR_WIDTH = 40  # characters of the console chart's bar area
ALT_TEXT = 1000  # characters; Slack's limit for a file's alt text (Discord allows 1,024)
TICK = 50_000  # axis step, in the band's currency
MAX_NOTE_FACTS = 2
NOTE_FACT_CHARS = 120  # a region fact longer than this stays in the text answer only

# Okabe-Ito colours (distinguishable with colour blindness), one per article; grey when
# the articles agree on a level.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
AGREED = "#5B6470"
INK, MUTED, GRID, BACKGROUND = "#1F2328", "#57606A", "#D8DEE4", "#FFFFFF"


@dataclass(frozen=True, slots=True)
class Bar:
    low: int
    high: int
    open_ended: bool
    currency: str
    articles: tuple[str, ...]  # short names of the articles that give this band


@dataclass(frozen=True, slots=True)
class Level:
    name: str
    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class SalaryChart:
    """What is drawn; hashable, so it is the cache key."""

    title: str
    note: tuple[str, ...]
    levels: tuple[Level, ...]
    articles: tuple[str, ...]  # every short name, in first-seen order: the colour order
    sources: tuple[str, ...]  # article titles


def salary_attachment(content: Content, title: str, region: Region, bands: list[Band] | tuple[Band, ...], reference: str = "") -> Attachment:
    """The chart of `bands` (as the `salary` answer selected them) as a PNG attachment.
    `reference` is the answer's line saying whose bands stand in for a region without any."""
    return _attachment(salary_chart(content, title, region, tuple(bands), reference))


def salary_chart(content: Content, title: str, region: Region, bands: tuple[Band, ...], reference: str = "") -> SalaryChart:
    by_level: dict[str, list[Bar]] = {}
    for band in bands:
        bars = by_level.setdefault(band.level, [])
        short = content.sources[band.source].short
        same = next((b for b in bars if (b.low, b.high, b.open_ended, b.currency) == (band.low, band.high, band.open_ended, band.currency)), None)
        if same is None:
            bars.append(Bar(band.low, band.high, band.open_ended, band.currency, (short,)))
        elif short not in same.articles:
            bars[bars.index(same)] = Bar(same.low, same.high, same.open_ended, same.currency, (*same.articles, short))
    levels = tuple(Level(content.levels[level].name, tuple(bars)) for level, bars in by_level.items())
    articles = tuple(dict.fromkeys(content.sources[b.source].short for b in bands))
    return SalaryChart(title, _note(content, region, reference), levels, articles, content.titles(*(b.source for b in bands)))


def _note(content: Content, region: Region, reference: str) -> tuple[str, ...]:
    """The region note: whose bands these are, and what the articles say about the region."""
    if reference:
        lines = [reference.rstrip(":") + "."]
    elif region.bands_from:
        lines = [f"{region.name}: the articles' {content.regions[region.bands_from].name} bands apply."]
    else:
        lines = [f"{region.name}, as the articles state the figures."]
    lines += [f.text for f in region.facts if len(f.text) <= NOTE_FACT_CHARS][:MAX_NOTE_FACTS]
    return tuple(dict.fromkeys(lines))


@functools.lru_cache(maxsize=128)
def _attachment(chart: SalaryChart) -> Attachment:
    return Attachment(
        filename=_slug(chart.title) + ".png",
        data=png(chart),
        description=alt_text(chart),
        content_type="image/png",
        text=text_chart(chart),
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "salary"


# --- words -------------------------------------------------------------------------------


def _range(bar: Bar, *, short: bool) -> str:
    fmt = _short_money if short else money
    return f"{fmt(bar.low, bar.currency)}-{fmt(bar.high, bar.currency)}{'+' if bar.open_ended else ''}"


def _short_money(value: int, currency: str) -> str:
    symbol = "$" if currency == "USD" else f"{currency} "
    thousands = value / 1000
    return f"{symbol}{thousands:.0f}k" if value % 1000 == 0 else f"{symbol}{thousands:.1f}k"


def _bar_label(bar: Bar) -> str:
    return f"{_range(bar, short=True)}  {' / '.join(bar.articles)}"


def alt_text(chart: SalaryChart) -> str:
    """The chart in words, for screen readers (at most `ALT_TEXT` characters)."""
    levels = "; ".join(
        f"{level.name}: " + ", ".join(f"{_range(bar, short=False)} ({' and '.join(bar.articles)})" for bar in level.bars)
        for level in chart.levels
    )
    text = f"Bar chart, {chart.title}. {levels}. {' '.join(chart.note)} Sources: {'; '.join(chart.sources)}."
    return text if len(text) <= ALT_TEXT else text[: ALT_TEXT - 1] + "…"


def text_chart(chart: SalaryChart, width: int = TEXT_BAR_WIDTH) -> str:
    """The chart as text bars, scaled to `width` characters, for terminals."""
    low, high = _axis(chart)
    scale = width / (high - low)
    name_width = max((len(level.name) for level in chart.levels), default=0)
    lines = [f"{chart.title} (chart)"]
    for level in chart.levels:
        for n, bar in enumerate(level.bars):
            start = round((bar.low - low) * scale)
            length = max(1, round((bar.high - bar.low) * scale))
            cells = " " * start + "█" * length + ("▸" if bar.open_ended else "")
            name = level.name if n == 0 else ""
            lines.append(f"{name:<{name_width}}  {cells:<{width + 1}}  {_bar_label(bar)}")
    currency = chart.levels[0].bars[0].currency if chart.levels else "USD"
    left, right = _short_money(low, currency), _short_money(high, currency)
    lines.append(f"{'':<{name_width}}  {left}{right:>{width + 1 - len(left)}}")
    lines += list(chart.note)
    if chart.sources:
        lines.append("Sources: " + "; ".join(chart.sources))
    return "\n".join(lines)


def _axis(chart: SalaryChart) -> tuple[int, int]:
    """Round figures around every bar, with room after an open-ended one for its arrow."""
    bars = [bar for level in chart.levels for bar in level.bars]
    if not bars:
        return 0, TICK
    low = min(b.low for b in bars) // TICK * TICK
    high = max(b.high + (TICK // 2 if b.open_ended else 0) for b in bars)
    return low, -(-high // TICK) * TICK


# --- pixels ------------------------------------------------------------------------------


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size)


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def png(chart: SalaryChart) -> bytes:
    """The chart as PNG bytes."""
    title_font, font, small = _font(30), _font(21), _font(17)
    inner = WIDTH - 2 * MARGIN
    title_lines = _wrap(chart.title, title_font, inner)
    note_lines = [line for text in chart.note for line in _wrap(text, small, inner)]
    source_lines = _wrap("Sources: " + "; ".join(chart.sources), small, inner) if chart.sources else []
    label_width = int(max((font.getlength(level.name) for level in chart.levels), default=0)) + 20
    bar_left, bar_right = MARGIN + label_width, WIDTH - MARGIN - 24  # room for the last tick's label
    label_h, bar_h, bar_gap, level_gap, line_h, small_h = 26, 18, 10, 14, 38, 23

    rows = sum(len(level.bars) for level in chart.levels)
    chart_h = rows * (label_h + bar_h + bar_gap) + max(0, len(chart.levels) - 1) * level_gap
    height = (MARGIN + len(title_lines) * line_h + len(note_lines) * small_h + 16 + chart_h + 34
              + (12 + len(source_lines) * small_h if source_lines else 0) + MARGIN)
    image = Image.new("RGB", (WIDTH, height), BACKGROUND)
    draw = ImageDraw.Draw(image)

    y = MARGIN
    for line in title_lines:
        draw.text((MARGIN, y), line, font=title_font, fill=INK)
        y += line_h
    for line in note_lines:
        draw.text((MARGIN, y), line, font=small, fill=MUTED)
        y += small_h
    y += 16

    low, high = _axis(chart)

    def x_of(value: int) -> float:
        return bar_left + (value - low) * (bar_right - bar_left) / (high - low)

    top, bottom = y, y + chart_h
    for tick in range(low, high + 1, TICK):
        x = x_of(tick)
        draw.line([(x, top), (x, bottom)], fill=GRID, width=1)
        label = _short_money(tick, chart.levels[0].bars[0].currency if chart.levels else "USD")
        draw.text((x, bottom + 6), label, font=small, fill=MUTED, anchor="ma")

    colours = {article: PALETTE[n % len(PALETTE)] for n, article in enumerate(chart.articles)}
    for level in chart.levels:
        level_top = y
        for bar in level.bars:
            colour = colours[bar.articles[0]] if len(bar.articles) == 1 else AGREED
            x0, x1 = x_of(bar.low), x_of(bar.high)
            label = _bar_label(bar)
            label_x = min(x0, bar_right - font.getlength(label))
            draw.text((label_x, y), label, font=font, fill=INK)
            bar_y = y + label_h
            draw.rectangle([(x0, bar_y), (x1, bar_y + bar_h)], fill=colour)
            if bar.open_ended:  # an arrow: the article gives no upper figure
                tip = min(x1 + 16, bar_right)
                draw.polygon([(x1, bar_y - 3), (tip, bar_y + bar_h / 2), (x1, bar_y + bar_h + 3)], fill=colour)
            y = bar_y + bar_h + bar_gap
        middle = (level_top + y - bar_gap) / 2
        draw.text((MARGIN, middle), level.name, font=font, fill=INK, anchor="lm")
        y += level_gap
    y = bottom + 34
    if source_lines:
        y += 12
        for line in source_lines:
            draw.text((MARGIN, y), line, font=small, fill=MUTED)
            y += small_h

    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()

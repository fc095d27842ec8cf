"""A contact sheet of a query: one static HTML page, readable in any browser.

Each queried image is shown as a thumbnail embedded in the page (a base64
JPEG data URI, so the page needs no server and survives being copied or
mailed), with its rank, acquisition score, predicted class and probability,
and its path. Thumbnails are made with PIL from the original files.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence

from PIL import Image

THUMBNAIL = 160  # pixels, the longer side


def thumbnail_uri(path: str, size: int = THUMBNAIL) -> str:
  """A ``data:image/jpeg;base64`` URI of the image at ``path``, at most ``size`` pixels
  on its longer side; an empty string when the file cannot be read."""
  try:
    with Image.open(path) as im:
      im = im.convert('RGB')
      im.thumbnail((size, size))
      buffer = io.BytesIO()
      im.save(buffer, 'JPEG', quality=85)
  except (OSError, ValueError, SyntaxError):
    return ''
  return 'data:image/jpeg;base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')


def render(rows: Sequence[dict], project_root: str, title: str) -> str:
  """The page for `jal.human.query.query_rows` (rank order).

  Args:
    rows: dicts with ``path``, ``rank``, ``score``, ``predicted`` and
      ``probability`` (strings, empty when unknown).
    project_root: the folder the paths are relative to.
    title: the page's heading.

  Returns:
    The HTML document.
  """
  cards = []
  for row in rows:
    uri = thumbnail_uri(os.path.join(project_root, row['path']))
    image = (f'<img src="{uri}" alt="{html.escape(row["path"])}">' if uri
             else '<div class="missing">cannot read the image</div>')
    facts = [f'<b>#{int(row["rank"]) + 1}</b>']
    if row['score']:
      facts.append(f'score {html.escape(row["score"])}')
    if row['predicted']:
      facts.append(f'predicted <b>{html.escape(row["predicted"])}</b> '
                   f'({float(row["probability"]):.0%})')
    cards.append(f'<figure>{image}<figcaption>{" · ".join(facts)}<br>'
                 f'<code>{html.escape(row["path"])}</code></figcaption></figure>')
  return f'''<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
main {{ display: flex; flex-wrap: wrap; gap: 14px; }}
figure {{ margin: 0; width: {THUMBNAIL + 16}px; padding: 8px; border: 1px solid #ccc;
          border-radius: 6px; background: #fafafa; }}
img {{ display: block; width: {THUMBNAIL}px; height: {THUMBNAIL}px; object-fit: contain;
       margin: auto; background: #eee; }}
figcaption {{ font-size: 12px; margin-top: 6px; overflow-wrap: anywhere; }}
code {{ font-size: 11px; color: #555; }}
.missing {{ height: {THUMBNAIL}px; color: #a00; }}
</style></head>
<body><h1>{html.escape(title)}</h1>
<p>{len(rows)} images, the most informative first. Fill in the <code>label</code> column of
<code>query.csv</code> beside this page (or label them in Label Studio from
<code>tasks.json</code>), then continue with <code>--labels</code>.</p>
<main>
{chr(10).join(cards)}
</main></body></html>
'''

"""The README and docs/*.md: every relative link and image resolves."""
import os
import re

import pytest

import testutil

ROOT = str(testutil.ROOT)
PAGES = ['README.md'] + sorted(
    os.path.join('docs', name) for name in os.listdir(os.path.join(ROOT, 'docs'))
    if name.endswith('.md'))

#: [text](target) and <img src="target">; code spans are cut out first.
LINK = re.compile(r'\]\(([^)\s]+)\)|<img [^>]*src="([^"]+)"')
CODE = re.compile(r'```.*?```|`[^`\n]*`', re.S)


def anchors(path):
    """GitHub's anchors of a page's headings: lower case, punctuation
    dropped, spaces as hyphens."""
    with open(path, encoding='utf-8') as f:
        text = CODE.sub('', f.read())
    found = set()
    for heading in re.findall(r'^#+ (.+)$', text, re.M):
        slug = re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')
        found.add(slug)
    return found


def links(root, page):
    with open(os.path.join(root, page), encoding='utf-8') as f:
        text = CODE.sub('', f.read())
    for m in LINK.finditer(text):
        target = m.group(1) or m.group(2)
        if not re.match(r'[a-z]+:', target):  # http:, https:, mailto:
            yield target


def test_the_readme_fits_on_two_screens():
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
        assert len(f.read().splitlines()) <= 250


def broken_links(root, page):
    """The relative links of ``page`` (a path under ``root``) whose file, or
    whose anchor in that file, does not exist."""
    base = os.path.dirname(os.path.join(root, page))
    broken = []
    for target in links(root, page):
        path, _, anchor = target.partition('#')
        full = os.path.normpath(os.path.join(base, path or
                                             os.path.basename(page)))
        if not os.path.exists(full) or (anchor and anchor not in anchors(full)):
            broken.append(target)
    return broken


@pytest.mark.parametrize('page', PAGES)
def test_every_relative_link_resolves(page):
    broken = broken_links(ROOT, page)
    assert not broken, '%s: %s' % (page, ', '.join(broken))


def test_the_link_check_sees_broken_links(tmp_path):
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'docs' / 'other.md').write_text('# Other page\n')
    (tmp_path / 'page.md').write_text(
        '# Title\n[ok](#title) [gone](missing.md) <img src="nope.png"> '
        '[bad](#nowhere) `[code](x.md)` [there](docs/other.md#other-page) '
        '[not there](docs/other.md#title) [web](https://example.org)\n')
    assert broken_links(str(tmp_path), 'page.md') == [
        'missing.md', 'nope.png', '#nowhere', 'docs/other.md#title']

"""The web dashboard, served by `flowbus api` at `/ui` (and `/`).

How it is built, and why:

- **Server-rendered pages** (Jinja2, autoescaped) over **the API itself**: each page calls
  the API's routes in-process (`client.py`) with the signed-in person's bearer token, so
  it shows what that token may see and is refused what the API refuses; the pages depend
  on the API's JSON contract only, never on its store or internals, and stay as fast as
  the API's server-side filters and keyset paging (100,000 instances page like ten).
- **htmx** (+ its SSE extension) for live updates: a page listens to a Server-Sent
  Events stream built on the API's own outcome streams (`live.py`) and redraws the part
  that changed from the API. Without JavaScript the pages still read and act (plain
  links and forms, answered with redirects).
- **mermaid** draws the step graphs in the browser from the source the API's Mermaid
  endpoint gives, with the instance's run applied as node styles and thick edges
  (`graph.py`); **uPlot** draws the throughput charts.
- The front-end packages are pinned in `package.json`/`package-lock.json` here, installed
  from the npm registry by `make` (`npm ci`) and copied to `static/vendor/`; nothing is
  loaded from a CDN, so the dashboard works with no internet.
- Same auth as the API (`session.py`): the API's bearer token, kept in an HttpOnly,
  SameSite=Strict cookie; with auth off (`flowbus dev`) nobody signs in.
"""

"""Browser assets shipped in the package (static/): the dashboard of `tidegate serve` and the
charts it shares with the HTML report. Plain files, no build step, nothing from a CDN."""

"""The browser demo of `dialect serve`: chat, generate, edit and the Dialect view in one page.

`actions` (plain Python, no Gradio) does the work, `overlay` draws the token grid with its words,
`app` lays out the Gradio panels. Gradio is an optional dependency (`pip install
"vision-dialect[demo]"`), imported only by `app`, so the rest of the package works without it.
"""

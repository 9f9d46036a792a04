"""The book's machinery: how a number travels from a notebook to a chapter, and how the notebooks start.
No chapter's number is computed here (the modules beside this package compute them).

=============  ===========================================================================================
module         job
=============  ===========================================================================================
startup        notebook start-up: project root, torch threads, quiet logs, the default backbone
glue           hand a value to the book (MyST-NB glue) and format numbers for prose
keys           every glue key the chapters use, with the notebook and function that glue it
keycheck       a static check that every quoted key is declared and produced by the notebook it names
executed       read the values glued into executed notebooks; compare two builds of the book
=============  ===========================================================================================
"""

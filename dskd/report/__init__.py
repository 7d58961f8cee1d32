"""Prose and tables that the book's pages show, generated from the package's records and files.

Each function returns Markdown (MyST: tables, ``$math$``) or a figure, so that a chapter shows it in one
line and a test checks it on fake result trees. Nothing here trains or measures; everything is read from
``results/`` (:mod:`dskd.results`), the shipped teacher's provenance file, or the objects a chapter passes in.

* :mod:`dskd.report.teacher`: every description of the shipped offline teacher, from its provenance file.
* :mod:`dskd.report.runs`: the "runs in this book" table (teacher, epochs, image size, seeds, where used).
* :mod:`dskd.report.results`: chapter 15's overview, learning-curve and gap discussion (Tables 1-5).
* :mod:`dskd.report.complexity`: chapter 14's tables (Table 6 for this implementation).
* :mod:`dskd.report.teacher_knowledge`: chapter 16's text (the teachers alone, the recorded candidates and
  teacher study, the goal with the offline teacher).
* :mod:`dskd.report.ablations`: chapters 10-13's captions, readings of the live and recorded studies, and
  the "where ours differs from the paper" lists.
* :mod:`dskd.report.studies`: chapters 10-13's studies at Table 5's budget (40 epochs).
"""

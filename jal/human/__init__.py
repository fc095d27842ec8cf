"""A person as the oracle: queries written to files, answers imported from files.

With ``config.oracle.name='human'`` a run stops after each query and writes
``DIR/queries/round_<r>/`` (`jal.human.query`): ``query.csv`` to fill in,
Label Studio's ``tasks.json`` and ``label_config.xml``, and ``index.html``,
a contact sheet of the queried images (`jal.human.contact_sheet`). The same
command with ``--labels FILE`` continues: the file (the filled CSV, a Label
Studio JSON or JSON-MIN export, a CVAT ImageNet zip, or a folder of
``<class>/<image>``; `jal.human.label_files`) is validated whole, copied into
``DIR/labels/``, and its answers enter the checkpoint (`jal.human.answers`)
before the next round trains.
"""

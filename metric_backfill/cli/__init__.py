"""The command line: `_commands` parses, calls one library function per command and renders
(`_render`: tables and progress). Nothing here decides what is written.

May import: everything in the package.
"""

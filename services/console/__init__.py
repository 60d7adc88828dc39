"""The console: the seed's command vocabulary (train(), pause(), save(), eval(), getSN(),
getModel(), trainFL(), ...) over a super node's HTTP control API (docs/control-api.md).

Modules: ``errors`` (one-line user-facing failures), ``parser`` (safe ``ast`` parsing of a
command line), ``spec`` (parameter and command specs, binding), ``commands`` (the command
table and its handlers), ``client`` (``ControlClient``, the HTTP client), ``render`` (rich
and JSON renderers), ``progress`` (following a training run), ``session`` (running one
command line) and ``repl`` (the interactive prompt).
"""

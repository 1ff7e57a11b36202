"""Entry point of Lamina's Python runtime; the runtime itself is ``lamina_runtime``.

A script run by path is compiled on every start (~5 ms of each cold start for the runtime), while
an imported module's bytecode is cached: the execution host byte-compiles ``lamina_runtime`` for
every registered interpreter when it starts.
"""

import lamina_runtime

lamina_runtime.main()

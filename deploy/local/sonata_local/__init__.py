"""The fleet on one machine without Docker: what `make run` starts, and how.

`plan` computes the processes, their environment and the configuration files they need (Procfile,
nginx, Prometheus) from the environment; `fleet` starts them (SecantusDB, RabbitMQ check,
honcho); `python -m sonata_local` is `make run`. The fleet tests reuse the same code.
"""

"""Every command's options, one module per command group, each with `register(subparsers)`: the light half of the
command line (argparse and name lists, no torch), so `toolprior --help` and a refused option cost nothing. Each
subcommand names what runs it with `set_defaults(run=("<module of toolprior.commands>", "<function>"))`;
toolprior/cli.py imports that module only when the subcommand is chosen."""

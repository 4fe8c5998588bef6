"""The figures of the article (figures), the arithmetic behind them (arrays),
and their files: GIFs, the projector's TSV files (figure_files)."""

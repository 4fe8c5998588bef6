"""Command-line arguments that several scripts share, defined once."""


def add_device_arguments(parser):
    """``--gpu/-g`` (the article's flag) and ``--device/-d``."""
    parser.add_argument('--gpu', '-g', type=int,
                        help='GPU id (CuPy), or -1 for the CPU (default -1)')
    parser.add_argument('--device', '-d',
                        help='any Chainer device specifier (@numpy, '
                        '@cupy:0, ...); wins over --gpu')


def add_data_dir_argument(parser):
    """``--data-dir``: a local copy of MNIST (see vae.datasets.load_mnist)."""
    parser.add_argument('--data-dir',
                        help='folder with the four MNIST IDX files (gzipped '
                        'or not); default: cache, then download')

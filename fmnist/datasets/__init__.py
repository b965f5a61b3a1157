"""What a run trains on: Fashion-MNIST (the default), MNIST, KMNIST, CIFAR-10/100 by name, or a folder of images.

choice.py reads `data:` and `--data`; named.py and folder.py read the data; loading.py turns either into Splits.
This package's top level imports nothing heavy: the spec schema (choice.py) is needed without torch.
"""

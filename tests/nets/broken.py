"""Networks that break the contract, each in its own way, for the tests of its sentences."""

import torch
from torch import nn


class NotAModule:
    pass


class WrongWidth(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 7)

    def forward(self, x):
        return self.fc(torch.flatten(x, 1))


class Branchy(nn.Module):
    """Takes a path that depends on the pixels: fx cannot follow it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(torch.flatten(x, 1))
        return -self.fc(torch.flatten(x, 1))


class Fails(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(100, 10)  # a 28x28 digit has 784 pixels

    def forward(self, x):
        return self.fc(torch.flatten(x, 1))


class Nan(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(torch.flatten(x, 1)) * float("nan")

"""A model torch.fx cannot trace (data-dependent control flow), for error tests."""
from torch import nn


class Gate(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.gate = nn.Conv2d(3, 4, 1), Gate()

    def forward(self, x):
        return self.gate(self.conv(x))


def build():
    return Net()

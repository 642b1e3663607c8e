"""PyTorch twins of cored's models, with the same state_dict names.

- Tiny: cored's test/demo CNN.
- Xception: the Cadene/tstandley Xception used by the official CoReD code (head `last_linear`).
- EfficientNetB0: the lukemelas EfficientNet-PyTorch B0 (static TF-"same" padding for 224,
  BN momentum 0.01 / eps 1e-3, swish, squeeze-excitation, drop-connect, dropout 0.2, `_fc`).

`stochastic=False` switches dropout and drop-connect off in train mode (BN still uses batch
statistics), which is what `cored forward/grad` compute.

Kink replay: ReLU and max pool are not differentiable at their kinks, and a float32 value
near one can fall on the other side than a float64 reference. `replay(decisions)` makes the
twin take cored's side of every kink (the ReLU masks and max-pool argmax that
`cored grad --decisions` writes, in execution order), so a float64 reference follows the
same piecewise-linear branch and only rounding separates the two.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- kink replay

class Replay:
    def __init__(self, tensors, prefix=""):
        self.t, self.prefix, self.count = tensors, prefix, {"relu": 0, "maxpool": 0}

    def next(self, kind, shape):
        key = f"{self.prefix}{kind}.{self.count[kind]}"
        self.count[kind] += 1
        if key not in self.t:
            raise KeyError(f"kink replay: cored wrote no '{key}' (the models' layer orders differ)")
        v = torch.from_numpy(self.t[key].astype("int64"))
        if tuple(v.shape) != tuple(shape):
            raise ValueError(f"kink replay: '{key}' has shape {tuple(v.shape)}, the twin {tuple(shape)}")
        return v

    def unused(self):
        used = {f"{self.prefix}{k}.{i}" for k, n in self.count.items() for i in range(n)}
        return [k for k in self.t if k.startswith(self.prefix) and k not in used]


_replay = None


def replay(r):
    """Follow cored's kink decisions (a Replay) or, with None, compute them as usual."""
    global _replay
    _replay = r


def relu(x):
    if _replay is None:
        return F.relu(x)
    return x * _replay.next("relu", x.shape).to(x.dtype)


def max_pool(x, k, s, p):
    if _replay is None:
        return F.max_pool2d(x, k, s, p)
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    idx = _replay.next("maxpool", (n, c, oh, ow))
    return x.flatten(2).gather(2, idx.flatten(2)).view(n, c, oh, ow)


class ReLU(nn.Module):
    """nn.ReLU with kink replay (no parameters, so state_dict names are unchanged)."""

    def __init__(self, inplace=False):
        super().__init__()

    def forward(self, x):
        return relu(x)


class MaxPool2d(nn.Module):
    def __init__(self, k, s, p):
        super().__init__()
        self.k, self.s, self.p = k, s, p

    def forward(self, x):
        return max_pool(x, self.k, self.s, self.p)


# ---------------------------------------------------------------- tiny

class Tiny(nn.Module):
    def __init__(self, num_classes=2):
        super().__init__()
        chans = [3, 32, 32, 64, 64]
        for i in range(4):
            setattr(self, f"conv{i + 1}", nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1, bias=False))
            setattr(self, f"bn{i + 1}", nn.BatchNorm2d(chans[i + 1]))
        self.fc = nn.Linear(64, num_classes)
        self.stochastic = True

    def features(self, x):
        for i in range(1, 4):
            x = relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        return self.bn4(self.conv4(x))

    def forward(self, x, return_features=False):
        f = self.features(x)
        y = self.fc(torch.flatten(F.adaptive_avg_pool2d(relu(f), 1), 1))
        return (y, f) if return_features else y


# ---------------------------------------------------------------- xception

class SeparableConv2d(nn.Module):
    def __init__(self, cin, cout, k=1, stride=1, padding=0, bias=False):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, k, stride, padding, groups=cin, bias=bias)
        self.pointwise = nn.Conv2d(cin, cout, 1, 1, 0, bias=bias)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class Block(nn.Module):
    def __init__(self, cin, cout, reps, strides=1, start_with_relu=True, grow_first=True):
        super().__init__()
        if cout != cin or strides != 1:
            self.skip = nn.Conv2d(cin, cout, 1, stride=strides, bias=False)
            self.skipbn = nn.BatchNorm2d(cout)
        else:
            self.skip = None
        rep = []
        filters = cin
        if grow_first:
            rep += [ReLU(inplace=True), SeparableConv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout)]
            filters = cout
        for _ in range(reps - 1):
            rep += [ReLU(inplace=True), SeparableConv2d(filters, filters, 3, 1, 1),
                    nn.BatchNorm2d(filters)]
        if not grow_first:
            rep += [ReLU(inplace=True), SeparableConv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout)]
        if not start_with_relu:
            rep = rep[1:]
        else:
            rep[0] = ReLU(inplace=False)
        if strides != 1:
            rep.append(MaxPool2d(3, strides, 1))
        self.rep = nn.Sequential(*rep)

    def forward(self, inp):
        x = self.rep(inp)
        skip = self.skipbn(self.skip(inp)) if self.skip is not None else inp
        return x + skip


class Xception(nn.Module):
    def __init__(self, num_classes=2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu1 = ReLU(inplace=True)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu2 = ReLU(inplace=True)
        self.block1 = Block(64, 128, 2, 2, start_with_relu=False, grow_first=True)
        self.block2 = Block(128, 256, 2, 2, start_with_relu=True, grow_first=True)
        self.block3 = Block(256, 728, 2, 2, start_with_relu=True, grow_first=True)
        for i in range(4, 12):
            setattr(self, f"block{i}", Block(728, 728, 3, 1, start_with_relu=True, grow_first=True))
        self.block12 = Block(728, 1024, 2, 2, start_with_relu=True, grow_first=False)
        self.conv3 = SeparableConv2d(1024, 1536, 3, 1, 1)
        self.bn3 = nn.BatchNorm2d(1536)
        self.relu3 = ReLU(inplace=True)
        self.conv4 = SeparableConv2d(1536, 2048, 3, 1, 1)
        self.bn4 = nn.BatchNorm2d(2048)
        self.last_linear = nn.Linear(2048, num_classes)
        self.stochastic = True
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def features(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        for i in range(1, 13):
            x = getattr(self, f"block{i}")(x)
        x = self.relu3(self.bn3(self.conv3(x)))
        return self.bn4(self.conv4(x))

    def forward(self, x, return_features=False):
        f = self.features(x)
        y = self.last_linear(torch.flatten(F.adaptive_avg_pool2d(relu(f), 1), 1))
        return (y, f) if return_features else y


# ---------------------------------------------------------------- efficientnet-b0

class Conv2dStaticSamePadding(nn.Conv2d):
    """TF "same" padding computed once for a fixed image size, as EfficientNet-PyTorch."""

    def __init__(self, cin, cout, k, stride=1, image_size=None, **kw):
        super().__init__(cin, cout, k, stride, **kw)
        ih = iw = image_size
        kh, kw_ = self.weight.size()[-2:]
        sh, sw = self.stride
        oh, ow = math.ceil(ih / sh), math.ceil(iw / sw)
        pad_h = max((oh - 1) * sh + kh - ih, 0)
        pad_w = max((ow - 1) * sw + kw_ - iw, 0)
        if pad_h > 0 or pad_w > 0:
            self.static_padding = nn.ZeroPad2d((pad_w // 2, pad_w - pad_w // 2,
                                                pad_h // 2, pad_h - pad_h // 2))
        else:
            self.static_padding = nn.Identity()

    def forward(self, x):
        return F.conv2d(self.static_padding(x), self.weight, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


def swish(x):
    return x * torch.sigmoid(x)


def drop_connect(x, p, training):
    if not training:
        return x
    keep = 1 - p
    mask = torch.floor(keep + torch.rand([x.shape[0], 1, 1, 1], dtype=x.dtype, device=x.device))
    return x / keep * mask


class MBConvBlock(nn.Module):
    def __init__(self, cin, cout, k, stride, expand, image_size, se_ratio=0.25):
        super().__init__()
        bn_mom, bn_eps = 0.01, 1e-3
        self.cin, self.cout, self.stride, self.expand = cin, cout, stride, expand
        oup = cin * expand
        if expand != 1:
            self._expand_conv = Conv2dStaticSamePadding(cin, oup, 1, image_size=image_size, bias=False)
            self._bn0 = nn.BatchNorm2d(oup, momentum=bn_mom, eps=bn_eps)
        self._depthwise_conv = Conv2dStaticSamePadding(oup, oup, k, stride, image_size=image_size,
                                                       groups=oup, bias=False)
        self._bn1 = nn.BatchNorm2d(oup, momentum=bn_mom, eps=bn_eps)
        image_size = math.ceil(image_size / stride)
        sq = max(1, int(cin * se_ratio))
        self._se_reduce = Conv2dStaticSamePadding(oup, sq, 1, image_size=1)
        self._se_expand = Conv2dStaticSamePadding(sq, oup, 1, image_size=1)
        self._project_conv = Conv2dStaticSamePadding(oup, cout, 1, image_size=image_size, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, momentum=bn_mom, eps=bn_eps)

    def forward(self, inputs, drop_connect_rate=None, stochastic=True):
        x = inputs
        if self.expand != 1:
            x = swish(self._bn0(self._expand_conv(inputs)))
        x = swish(self._bn1(self._depthwise_conv(x)))
        s = F.adaptive_avg_pool2d(x, 1)
        s = self._se_expand(swish(self._se_reduce(s)))
        x = torch.sigmoid(s) * x
        x = self._bn2(self._project_conv(x))
        if self.stride == 1 and self.cin == self.cout:
            if drop_connect_rate:
                x = drop_connect(x, drop_connect_rate, self.training and stochastic)
            x = x + inputs
        return x


class EfficientNetB0(nn.Module):
    STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
              (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]

    def __init__(self, num_classes=2, image_size=224, drop_connect_rate=0.2, dropout=0.2):
        super().__init__()
        bn_mom, bn_eps = 0.01, 1e-3
        self.drop_connect_rate = drop_connect_rate
        self._conv_stem = Conv2dStaticSamePadding(3, 32, 3, 2, image_size=image_size, bias=False)
        self._bn0 = nn.BatchNorm2d(32, momentum=bn_mom, eps=bn_eps)
        image_size = math.ceil(image_size / 2)
        self._blocks = nn.ModuleList()
        for reps, k, s, e, cin, cout in self.STAGES:
            self._blocks.append(MBConvBlock(cin, cout, k, s, e, image_size))
            image_size = math.ceil(image_size / s)
            for _ in range(reps - 1):
                self._blocks.append(MBConvBlock(cout, cout, k, 1, e, image_size))
        self._conv_head = Conv2dStaticSamePadding(320, 1280, 1, image_size=image_size, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, momentum=bn_mom, eps=bn_eps)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)
        self.stochastic = True

    def features(self, x):
        x = swish(self._bn0(self._conv_stem(x)))
        for idx, block in enumerate(self._blocks):
            rate = self.drop_connect_rate * float(idx) / len(self._blocks)
            x = block(x, drop_connect_rate=rate, stochastic=self.stochastic)
        return swish(self._bn1(self._conv_head(x)))

    def forward(self, x, return_features=False):
        f = self.features(x)
        y = torch.flatten(F.adaptive_avg_pool2d(f, 1), 1)
        y = self._dropout(y) if self.stochastic else y
        y = self._fc(y)
        return (y, f) if return_features else y


MODELS = {"tiny": Tiny, "xception": Xception, "efficientnet-b0": EfficientNetB0}


def build(name):
    return MODELS[name]()


def randomize_bn(model, gen):
    """Random BN affine parameters and running statistics, so parity tests exercise them."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.2, 0.2, generator=gen)
                m.running_mean.uniform_(-0.2, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)

"""The SLSG networks of this repository re-stated in PyTorch, to time them side by side with
`cargo bench -p slsg --bench train_step` on the same machine and thread count.

Same architecture as shared/src/model (ResNet-18 encoder without the stem max-pool, U-Net
decoder, auxiliary heads, PatchGAN D-Net, SG block with top-K max-relative graph convolution),
same losses and optimisers, same sizes. Prints a Markdown table.

Run: python3 bench/torch_reference.py [full|tiny] [threads] [cpu|cuda]   (needs torch)
"""
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def scaled(c, width):
    return max(1, round(c * width))


def group(cin, cout, k=3, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def resize(x, size):
    return x if list(x.shape[-2:]) == list(size) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(out + (x if self.short is None else self.short(x)))


class Encoder(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.ch = [scaled(c, width) for c in (64, 64, 128, 256, 512)]
        s, c1, c2, c3, c4 = self.ch
        self.stem = nn.Sequential(nn.Conv2d(3, s, 7, 2, 3, bias=False), nn.BatchNorm2d(s), nn.ReLU(inplace=True))
        layer = lambda i, o, st: nn.Sequential(BasicBlock(i, o, st), BasicBlock(o, o, 1))
        self.l1, self.l2, self.l3, self.l4 = layer(s, c1, 1), layer(c1, c2, 2), layer(c2, c3, 2), layer(c3, c4, 2)

    def forward(self, x):
        x = (x - MEAN.to(x.device)) / STD.to(x.device)
        stem = self.stem(x)
        l1 = self.l1(stem)
        l2 = self.l2(l1)
        l3 = self.l3(l2)
        return [l3, l2, l1], self.l4(l3)


class Decoder(nn.Module):
    def __init__(self, bottleneck, skips, extra, out):
        super().__init__()
        self.ups, self.blocks = nn.ModuleList(), nn.ModuleList()
        ch = bottleneck
        for s in skips:
            self.ups.append(group(ch, s))
            self.blocks.append(nn.Sequential(group(2 * s + extra, s), group(s, s)))
            ch = s
        last = max(ch // 2, 1)
        self.final_up, self.final_block = group(ch, last), nn.Sequential(group(last, last), group(last, last))
        self.head = nn.Conv2d(last, out, 1)

    def forward(self, x, skips, extra, size):
        for up, block, skip in zip(self.ups, self.blocks, skips):
            x = up(resize(x, skip.shape[-2:]))
            parts = [x, skip] + ([resize(extra, skip.shape[-2:])] if extra is not None else [])
            x = block(torch.cat(parts, 1))
        return self.head(self.final_block(self.final_up(resize(x, size))))


class AuxHead(nn.Module):
    def __init__(self, cin, hidden, out):
        super().__init__()
        self.g, self.head = group(cin, hidden), nn.Conv2d(hidden, out, 1)

    def forward(self, x, size):
        return resize(self.head(self.g(x)), size)


class GptNet(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.encoder = Encoder(width)
        s, c1, c2, c3, c4 = self.encoder.ch
        self.decoder = Decoder(c4, [c3, c2, c1], 0, 3)
        self.aux = AuxHead(c4, scaled(64, width), 3)

    def forward(self, x):
        skips, b = self.encoder(x)
        size = x.shape[-2:]
        return torch.sigmoid(self.decoder(b, skips, None, size)), torch.sigmoid(self.aux(b, size))


class Discriminator(nn.Module):
    def __init__(self, width):
        super().__init__()
        w = [3] + [scaled(c, width) for c in (64, 128, 256, 512)]
        layers = []
        for i in range(4):
            k, s = (4, 2) if i < 3 else (3, 1)
            layers += [nn.Conv2d(w[i], w[i + 1], k, s, 1, bias=False), nn.BatchNorm2d(w[i + 1]), nn.LeakyReLU(0.2, inplace=True)]
        self.body, self.head = nn.Sequential(*layers), nn.Conv2d(w[4], 1, 3, 1, 1)

    def forward(self, x):
        return self.head(self.body(x))


def position_similarity(h, w, channels=64):
    per_axis = channels // 2
    freq = torch.tensor([1.0 / 10000 ** (2 * i / per_axis) for i in range(per_axis // 2)])
    def axis(p):
        a = p[:, None].float() * freq[None]
        return torch.cat([a.sin(), a.cos()], 1)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    p = torch.cat([axis(ys.flatten()), axis(xs.flatten())], 1)
    p = F.normalize(p, dim=1)
    return p @ p.t()


class SgBlock(nn.Module):
    def __init__(self, c, z=8, k=9):
        super().__init__()
        d = max(c // z, 1)
        self.f, self.g, self.h, self.u = nn.Conv2d(c, d, 1), nn.Conv2d(c, d, 1), nn.Conv2d(c, c, 1), nn.Conv2d(2 * c, c, 1)
        self.k = k

    def forward(self, x):
        b, c, h, w = x.shape
        n = h * w
        q = self.f(x).flatten(2).transpose(1, 2)
        kk = self.g(x).flatten(2)
        v = self.h(x).flatten(2).transpose(1, 2)
        z = torch.softmax(q @ kk / math.sqrt(q.shape[-1]), -1) @ v
        z = z.transpose(1, 2).reshape(b, c, h, w)
        with torch.no_grad():
            sim = F.normalize(q, dim=2) @ F.normalize(kk, dim=1) - position_similarity(h, w).to(x.device)[None]
            idx = sim.topk(min(self.k, n), dim=2).indices
        nodes = x.flatten(2).transpose(1, 2)
        gathered = torch.gather(nodes, 1, idx.reshape(b, -1, 1).expand(-1, -1, c)).reshape(b, n, -1, c)
        vv = (gathered.max(2).values - nodes).transpose(1, 2).reshape(b, c, h, w)
        return self.u(torch.cat([z, vv], 1))


class SegNet(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.encoder = Encoder(width)
        s, c1, c2, c3, c4 = self.encoder.ch
        e = scaled(64, width)
        self.sg, self.sg_skip = SgBlock(c4), nn.Conv2d(c4, e, 1)
        self.decoder = Decoder(c4, [c3, c2, c1], e, 2)
        self.aux = AuxHead(c4, scaled(64, width), 2)

    def forward_features(self, skips, b, size):
        refined = self.sg(b)
        extra = F.relu(self.sg_skip(refined))
        aux = self.aux(refined, size)
        return self.decoder(refined, skips, extra, size) + aux, aux


def focal(logits, target, gamma=4.0):
    logp = F.log_softmax(logits, 1)
    log_pt = target * logp[:, 1:2] + (1 - target) * logp[:, 0:1]
    return (-(1 - log_pt.exp()) ** gamma * log_pt).mean()


DEVICE = torch.device("cpu")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timed(repeats, step):
    step()
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    sync()
    return (time.perf_counter() - start) / repeats


def main():
    which = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in ("full", "tiny") else None
    global DEVICE
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    DEVICE = torch.device(sys.argv[3] if len(sys.argv) > 3 else "cpu")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cases = [("full", 256, 1.0, 2), ("tiny", 64, 0.125, 10)]
    print(f"torch {torch.__version__}, device {DEVICE}, threads: {threads}")
    print("| config | batch | GPT-Net step (D + G) s | SegNet step s | SegNet inference images/s |")
    print("|---|---|---|---|---|")
    for name, size, width, repeats in cases:
        if which and which != name:
            continue
        for batch in (1, 16):
            x = torch.rand(batch, 3, size, size, device=DEVICE)
            target = (torch.rand(batch, 1, size, size, device=DEVICE) < 0.05).float()
            gen, disc = GptNet(width).to(DEVICE), Discriminator(width).to(DEVICE)
            og, od = torch.optim.Adam(gen.parameters(), 1e-3), torch.optim.Adam(disc.parameters(), 6e-4)

            def gpt_step():
                fake = gen(x)[0].detach()
                loss_d = 0.5 * disc(fake).pow(2).mean() + 0.5 * (disc(x) - 1).pow(2).mean()
                od.zero_grad(); loss_d.backward(); od.step()
                image, aux = gen(x)
                loss = 0.5 * (disc(image) - 1).pow(2).mean() + 0.8 * (image - x).abs().mean() + (aux - x).pow(2).mean()
                og.zero_grad(); loss.backward(); og.step()

            seg = SegNet(width).to(DEVICE)
            seg.encoder.eval()
            params = [p for n, p in seg.named_parameters() if not n.startswith("encoder.")]
            sgd = torch.optim.SGD(params, lr=0.04, momentum=0.9)

            def seg_step():
                with torch.no_grad():
                    skips, b = seg.encoder(x)
                logits, aux = seg.forward_features(skips, b, (size, size))
                loss = 0.4 * focal(logits, target) + 0.6 * (torch.softmax(logits, 1)[:, 1:2] - target).abs().mean() + 0.3 * focal(aux, target)
                sgd.zero_grad(); loss.backward(); sgd.step()

            def infer():
                with torch.no_grad():
                    skips, b = seg.encoder(x)
                    torch.softmax(seg.forward_features(skips, b, (size, size))[0], 1)[:, 1:2]

            seg.eval()
            t_gpt = timed(repeats, gpt_step)
            seg.train(); seg.encoder.eval()
            t_seg = timed(repeats, seg_step)
            seg.eval()
            t_inf = timed(repeats, infer)
            print(f"| {name} ({size}×{size}, width {width}) | {batch} | {t_gpt:.3f} | {t_seg:.3f} | {batch / t_inf:.1f} |")


if __name__ == "__main__":
    main()

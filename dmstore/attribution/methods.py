"""The attribution methods `dmstore attribute` computes, each returning scores float32
[d, n_targets] (train-major; positive = the train example raises the target's output):

    trak      TRAK (Park et al. 2023): traker's TRAKer (default) or dattri's TRAKAttributor
    if        influence functions, exact damped inverse Hessian (dmstore, torch.func; or dattri's
              IFAttributorExplicit, which agrees with it, for small models)
    tracin    TracIn-CP over the per-epoch checkpoints, weighted by their learning rates (dattri)
    graddot   the dot product of loss gradients at the final model (dattri, TracIn with one checkpoint)
    repsim    cosine similarity of penultimate-layer features (no library needed)

Each averages over the K full-data models it is given (TRAK ensembles them itself). The
libraries' traps are handled here: dattri's TRAK and TracIn attributors share (and update) a
module-level projector setting, so every attributor gets its own copy and the module default is
restored after it; TracIn and Grad-Dot project to 512 dimensions unless told not to, so their
projector is switched off after construction (exact gradients; these models are small); dattri's
influence-function attributor sums one inverse-Hessian product per training-loader batch and
redoes the test side for every (train, test) batch pair, so it must get the whole train set as
one batch (the textbook estimate), and then builds the Hessian with torch.func.hessian over all
of it at once (the digits MLP, P = 9,610 parameters, passed 24 GB): dmstore's own `influence`
builds the same Hessian in column blocks of Hessian-vector products (tested equal to dattri's
scores on a small model); traker scores only with
`load_from_save_dir=True` (it reads back its experiments.json), in a private directory, with
its CPU projector on the CPU and float32.
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import logging
import shutil
import tempfile

import numpy as np
import torch

from ..errors import InputError

def _need(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise InputError(f"this method needs {module}: pip install 'dmstore[attribution]' (dattri and traker, "
                         f"CPU-friendly beside torch)") from None


def _loader(x, y, batch: int):
    ds = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=False)


@contextlib.contextmanager
def _dattri_projectors():
    """Save and restore dattri's module-level projector defaults (its attributors update them)."""
    from dattri.algorithm import tracin, trak
    saved = {m: copy.deepcopy(m.DEFAULT_PROJECTOR_KWARGS) for m in (tracin, trak)}
    try:
        yield
    finally:
        for m, v in saved.items():
            m.DEFAULT_PROJECTOR_KWARGS.clear()
            m.DEFAULT_PROJECTOR_KWARGS.update(v)


def _task(recipe, model, checkpoints, sample_ndim: int, target: str = "loss"):
    """A dattri AttributionTask whose loss (and target) is the recipe's per-example loss, or
    (target='output') whose target function is the recipe's output (the margin). dattri calls
    these per example (vmapped: x has `sample_ndim` dims) and, for the explicit Hessian, on a
    whole batch: then the loss is the batch mean (the empirical risk whose Hessian IF inverts)."""
    from dattri.task import AttributionTask

    def call(fn, params, data):
        x, y = data
        if x.dim() == sample_ndim:
            logits = torch.func.functional_call(model, params, x.unsqueeze(0))
            return fn(logits, y.unsqueeze(0)).sum()
        return fn(torch.func.functional_call(model, params, x), y).mean()

    def loss_func(params, data):
        return call(recipe.loss, params, data)

    def output_func(params, data):
        return call(recipe.output, params, data)
    return AttributionTask(loss_func=loss_func, model=model, checkpoints=checkpoints,
                           target_func=output_func if target == "output" else None)


def trak_traker(recipe, models, X, y, d, targets, proj_dim, device, batch=128):
    _need("trak")
    from trak import TRAKer
    from trak.projectors import BasicProjector, ProjectionType
    model = copy.deepcopy(models[0]["model"]).to(device)
    grad_dim = sum(p.numel() for p in model.parameters())
    save = tempfile.mkdtemp(prefix="dmstore-trak-")
    try:
        projector = BasicProjector(grad_dim=grad_dim, proj_dim=proj_dim, seed=0, proj_type=ProjectionType.normal,
                                   device=torch.device(device))
        tr = TRAKer(model=model, task="image_classification", train_set_size=d, save_dir=save, device=str(device),
                    projector=projector, use_half_precision=False, load_from_save_dir=True,
                    logging_level=logging.ERROR)
        Xtr, ytr = X[:d].to(device), y[:d].to(device)
        for mid, m in enumerate(models):
            tr.load_checkpoint(m["model"].state_dict(), model_id=mid)
            for lo in range(0, d, batch):
                tr.featurize(batch=(Xtr[lo:lo + batch], ytr[lo:lo + batch]), num_samples=min(batch, d - lo))
        tr.finalize_features()
        Xte, yte = X[targets].to(device), y[targets].to(device)
        n = len(targets)
        for mid, m in enumerate(models):
            tr.start_scoring_checkpoint(exp_name="dmstore", checkpoint=m["model"].state_dict(), model_id=mid,
                                        num_targets=n)
            for lo in range(0, n, batch):
                tr.score(batch=(Xte[lo:lo + batch], yte[lo:lo + batch]), num_samples=min(batch, n - lo))
        S = tr.finalize_scores(exp_name="dmstore")
        return np.asarray(S.cpu().numpy() if isinstance(S, torch.Tensor) else S, np.float32)
    finally:
        shutil.rmtree(save, ignore_errors=True)


def trak_dattri(recipe, models, X, y, d, targets, proj_dim, device, batch=128):
    _need("dattri")
    from dattri.algorithm.trak import TRAKAttributor
    model = copy.deepcopy(models[0]["model"]).to(device)

    def output(params, data):          # TRAK's f: the log-odds of the correct class
        x, yy = data
        logits = torch.func.functional_call(model, params, x.unsqueeze(0))
        logp = -torch.nn.functional.cross_entropy(logits, yy.unsqueeze(0))
        return logp - torch.log1p(-torch.exp(logp))

    def prob(params, data):
        x, yy = data
        logits = torch.func.functional_call(model, params, x.unsqueeze(0))
        return torch.exp(-torch.nn.functional.cross_entropy(logits, yy.unsqueeze(0)))
    from dattri.task import AttributionTask
    task = AttributionTask(loss_func=output, model=model, checkpoints=[m["model"].state_dict() for m in models])
    with _dattri_projectors():
        att = TRAKAttributor(task=task, correct_probability_func=prob, device=str(device),
                             projector_kwargs={"device": str(device), "proj_dim": proj_dim, "proj_seed": 0,
                                               "proj_max_batch_size": 32})
        att.cache(_loader(X[:d], y[:d], batch))
        S = att.attribute(_loader(X[targets], y[targets], batch))
    return S.detach().cpu().numpy().astype(np.float32)


def _flat(model):
    """(flat parameters float64-free view [P], unflatten: [P] → {name: tensor})."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])

    def unflat(v):
        return {n: t.reshape(sh) for n, t, sh in zip(names, torch.split(v, sizes), shapes)}
    return flat, unflat


def per_example_grads(fn, model, X, y, batch: int = 256) -> torch.Tensor:
    """∇θ fn(model(x_i), y_i) for every row: float32 [n, P] (torch.func, batched)."""
    flat, unflat = _flat(model)

    def one(p, x, yy):
        return fn(torch.func.functional_call(model, unflat(p), x.unsqueeze(0)), yy.unsqueeze(0)).sum()
    g = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))
    return torch.cat([g(flat, X[lo:lo + batch], y[lo:lo + batch]) for lo in range(0, len(y), batch)])


def loss_hessian(recipe, model, X, y, batch: int = 512, chunk: int = 256) -> torch.Tensor:
    """The Hessian of the mean training loss at the model's parameters, float64 [P, P]: built
    column block by column block (Hessian-vector products of `chunk` basis vectors at a time, over
    train batches of `batch`), so memory stays ~chunk·batch activations instead of P·n."""
    flat, unflat = _flat(model)
    P = flat.numel()
    H = torch.zeros(P, P, dtype=torch.float64)
    eye = torch.eye(P, dtype=flat.dtype)
    for lo in range(0, len(y), batch):
        xb, yb = X[lo:lo + batch], y[lo:lo + batch]

        def total(p, xb=xb, yb=yb):
            return recipe.loss(torch.func.functional_call(model, unflat(p), xb), yb).sum()
        grad = torch.func.grad(total)

        def hvp(v, grad=grad):
            return torch.func.jvp(grad, (flat,), (v,))[1]
        for c in range(0, P, chunk):
            H[:, c:c + chunk] += torch.func.vmap(hvp)(eye[c:c + chunk]).T.double()
    return H / len(y)


def influence(recipe, models, X, y, d, targets, device, damping: float = 0.1):
    """Influence functions (Koh & Liang 2017) with the exact damped Hessian of the mean training
    loss: score[i, t] = ∇loss(z_t)ᵀ (H + damping·I)⁻¹ ∇loss(z_i), the first-order decrease of the
    target's loss when train example i is upweighted (positive = helps the target). Computed by
    dmstore with torch.func (see the module docstring for why not dattri's attributor). The damping
    must exceed the Hessian's most negative eigenvalue: on the digits MLP that is -0.019, and LDS
    was 0.33 at damping 0.01, 0.67 at 0.1 (the default), 0.52 at 1.0."""
    total = None
    X, y = X.to(device), y.to(device)
    for m in models:
        model = copy.deepcopy(m["model"]).to(device).eval()
        H = loss_hessian(recipe, model, X[:d], y[:d])
        H += damping * torch.eye(H.shape[0], dtype=H.dtype)
        G_tr = per_example_grads(recipe.loss, model, X[:d], y[:d]).double()
        G_te = per_example_grads(recipe.loss, model, X[targets], y[targets]).double()
        # a network's loss Hessian is indefinite: a general solve, as dattri's explicit inverse
        S = (G_tr @ torch.linalg.solve(H, G_te.T)).cpu().numpy()    # [d, n_targets]
        total = S if total is None else total + S
    return (total / len(models)).astype(np.float32)


def influence_dattri(recipe, models, X, y, d, targets, device, damping: float = 0.1, test_batch: int = 64):
    """The same estimate through dattri's IFAttributorExplicit (full-batch train loader: the
    textbook estimate). Its Hessian is torch.func.hessian over the whole train batch, which holds
    P·n activations at once: use only for small models (the test compares it with `influence`)."""
    _need("dattri")
    from dattri.algorithm.influence_function import IFAttributorExplicit
    total = None
    for m in models:
        model = copy.deepcopy(m["model"]).to(device)
        att = IFAttributorExplicit(task=_task(recipe, model, model.state_dict(), X.dim() - 1), device=str(device),
                                   regularization=damping)
        full = _loader(X[:d], y[:d], d)
        att.cache(full)
        S = att.attribute(full, _loader(X[targets], y[targets], test_batch)).detach().cpu().numpy()
        total = S.astype(np.float64) if total is None else total + S
    return (total / len(models)).astype(np.float32)


def tracin(recipe, models, X, y, d, targets, device, final_only: bool = False, batch: int = 256):
    _need("dattri")
    from dattri.algorithm.tracin import TracInAttributor
    total = None
    for m in models:
        model = copy.deepcopy(m["model"]).to(device)
        ckpts = [model.state_dict()] if final_only else m["checkpoints"]
        weights = torch.tensor([1.0] if final_only else m["lrs"], dtype=torch.float32)
        with _dattri_projectors():
            att = TracInAttributor(task=_task(recipe, model, ckpts, X.dim() - 1), weight_list=weights, normalized_grad=False,
                                   device=str(device))
            att.projector_kwargs = None        # exact gradients (otherwise a 512-dim projection)
            S = att.attribute(_loader(X[:d], y[:d], batch), _loader(X[targets], y[targets], batch))
        # TracIn sums lr · <∇loss(train), ∇loss(test)>: positive = the train step lowers the test loss
        S = S.detach().cpu().numpy().astype(np.float64)
        total = S if total is None else total + S
    return (total / len(models)).astype(np.float32)


def repsim(recipe, models, X, y, d, targets, device):
    total = None
    for m in models:
        F = recipe.features(m["model"].to(device), X.to(device)).double().cpu()
        F = F / F.norm(dim=1, keepdim=True).clamp_min(1e-12)
        S = (F[:d] @ F[targets].T).numpy()
        total = S if total is None else total + S
    return (total / len(models)).astype(np.float32)


@contextlib.contextmanager
def _quiet_libraries():
    """The libraries' own tqdm bars off (dmstore reports progress itself): their modules' `tqdm`
    names point at a disabled bar while dmstore calls them (TQDM_DISABLE is read only when tqdm
    is imported)."""
    import functools
    import sys

    from tqdm import tqdm
    for name in ("dattri.algorithm.base", "dattri.algorithm.influence_function", "dattri.algorithm.tracin",
                 "dattri.algorithm.trak", "trak.traker", "trak.gradient_computers", "trak.savers"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    quiet = functools.partial(tqdm, disable=True)
    swapped = [(m, m.tqdm) for name, m in list(sys.modules.items())
               if name.split(".")[0] in ("dattri", "trak") and getattr(m, "tqdm", None) is tqdm]
    for m, _ in swapped:
        m.tqdm = quiet
    try:
        yield
    finally:
        for m, orig in swapped:
            m.tqdm = orig


def trak_scores(job):
    fn = trak_traker if job.library == "traker" else trak_dattri
    return fn(job.recipe, job.models, job.X, job.y, job.d, job.targets, job.options["proj_dim"], job.device)


def influence_scores(job):
    fn = influence_dattri if job.library == "dattri" else influence
    return fn(job.recipe, job.models, job.X, job.y, job.d, job.targets, job.device, job.options["damping"])


def tracin_scores(job):
    return tracin(job.recipe, job.models, job.X, job.y, job.d, job.targets, job.device)


def graddot_scores(job):
    return tracin(job.recipe, job.models, job.X, job.y, job.d, job.targets, job.device, final_only=True)


def repsim_scores(job):
    return repsim(job.recipe, job.models, job.X, job.y, job.d, job.targets, job.device)


def scores(method, job) -> np.ndarray:
    """float32 [d, len(targets)]: the scores of registry entry `method` for `job`, with the
    libraries' own progress bars off."""
    with _quiet_libraries():
        return method.function()(job)

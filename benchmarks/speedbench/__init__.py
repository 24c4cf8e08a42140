"""The speed and memory benchmark behind ``benchmarks/speed.py``.

For each method, class count and phase (``train``, ``eval``) it measures, once in *our*
configuration and once *reference-style*, in the same run:

- training images/s: one optimizer step = forward over a batch with every class prompt, CE loss,
  backward, SGD step (median over ``--steps`` timed steps after ``--warmup`` untimed ones). Methods
  that do not train by gradient (zeroshot, linear-probe) report their feature-extraction rate
  (frozen image encoder under ``torch.no_grad``) instead, marked ``features``;
- evaluation images/s over ``--steps`` test batches of ``--eval-batch-size`` under ``torch.no_grad``:
  ``steps * batch / (t_text + steps * median(t_batch))`` where ``t_text`` is the one-time class
  text encoding on entering ``method.cached_text()`` (ours; 0 reference-style, which re-encodes the
  text inside every batch);
- peak memory over the baseline after the model is loaded and the batch is built: CUDA max
  allocated, or on the CPU the peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) of a
  fresh subprocess per measurement, so no configuration inherits another's peak;
- trainable parameters (``method.num_trainable()``).

Modules:

- :mod:`.spec`: what one measurement depends on (:class:`~.spec.Spec`) and the generated class names;
- :mod:`.styles`: how ours and reference-style configure a method (precision, truncation, chunking);
- :mod:`.workload`: one configured method with its batch, stepped and timed (:class:`~.workload.Setup`);
- :mod:`.measure`: one configuration alone, a pair interleaved, or a training step's parts;
- :mod:`.memory`: peak memory over a baseline, and the RSS watchdog of CPU workers;
- :mod:`.isolation`: a measurement job in this process or in a fresh worker subprocess;
- :mod:`.report`: the results JSON, its paired rows and the Markdown tables;
- :mod:`.cli`: the command line.
"""

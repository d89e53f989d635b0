"""The papers the built-in models follow, as BibTeX, for their model cards."""

LECUN_1998 = """@article{lecun1998,
  title   = {Gradient-based learning applied to document recognition},
  author  = {LeCun, Yann and Bottou, L{\\'e}on and Bengio, Yoshua and Haffner, Patrick},
  journal = {Proceedings of the IEEE},
  volume  = {86}, number = {11}, pages = {2278--2324}, year = {1998}
}"""

GAL_2016 = """@inproceedings{gal2016,
  title     = {Dropout as a {B}ayesian Approximation:
               Representing Model Uncertainty in Deep Learning},
  author    = {Gal, Yarin and Ghahramani, Zoubin},
  booktitle = {International Conference on Machine Learning (ICML)}, year = {2016}
}"""

BLUNDELL_2015 = """@inproceedings{blundell2015,
  title     = {Weight Uncertainty in Neural Networks},
  author    = {Blundell, Charles and Cornebise, Julien and Kavukcuoglu, Koray and Wierstra, Daan},
  booktitle = {International Conference on Machine Learning (ICML)}, year = {2015}
}"""

LAKSHMINARAYANAN_2017 = """@inproceedings{lakshminarayanan2017,
  title     = {Simple and Scalable Predictive Uncertainty Estimation using Deep Ensembles},
  author    = {Lakshminarayanan, Balaji and Pritzel, Alexander and Blundell, Charles},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)}, year = {2017}
}"""

MACKAY_1992 = """@article{mackay1992,
  title   = {A Practical {B}ayesian Framework for Backpropagation Networks},
  author  = {MacKay, David J. C.},
  journal = {Neural Computation}, volume = {4}, number = {3}, pages = {448--472}, year = {1992}
}"""

DAXBERGER_2021 = """@inproceedings{daxberger2021,
  title     = {Laplace Redux -- Effortless {B}ayesian Deep Learning},
  author    = {Daxberger, Erik and Kristiadi, Agustinus and Immer, Alexander and
               Eschenhagen, Runa and Bauer, Matthias and Hennig, Philipp},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)}, year = {2021}
}"""

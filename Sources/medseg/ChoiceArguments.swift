import ArgumentParser
import MedSegModels
import MedSegTrain
import Torch

// Choices parsed by ArgumentParser: a bad value fails before anything loads, and --help lists them.
extension ModelName: ExpressibleByArgument {}
extension OptimizerName: ExpressibleByArgument {}
extension SchedulerName: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}

import ArgumentParser
import MedSegModels
import MedSegTrain

// Choices parsed by ArgumentParser: a bad value fails before anything loads, and --help lists them.
extension ModelName: ExpressibleByArgument {}
extension OptimizerName: ExpressibleByArgument {}
extension SchedulerName: ExpressibleByArgument {}

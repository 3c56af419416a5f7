import Foundation

/// A learning-rate schedule: the rate at a step (epoch or iteration) given the initial rate.
public protocol LRSchedule {
    func lr(step: Int, initial: Double) -> Double
}

/// nnU-Net's polynomial decay: initial x (1 - step / maxSteps)^power.
public struct PolyLR: LRSchedule {
    public var maxSteps: Int
    public var power: Double
    public init(maxSteps: Int, power: Double = 0.9) { self.maxSteps = maxSteps; self.power = power }
    public func lr(step: Int, initial: Double) -> Double {
        initial * Foundation.pow(Swift.max(0, 1 - Double(step) / Double(maxSteps)), power)
    }
}

/// Cosine annealing from the initial rate to etaMin over tMax steps (PyTorch's CosineAnnealingLR).
public struct CosineAnnealingLR: LRSchedule {
    public var tMax: Int
    public var etaMin: Double
    public init(tMax: Int, etaMin: Double = 0) { self.tMax = tMax; self.etaMin = etaMin }
    public func lr(step: Int, initial: Double) -> Double {
        etaMin + (initial - etaMin) * (1 + cos(Double.pi * Double(step) / Double(tMax))) / 2
    }
}

/// Multiplies by gamma every stepSize steps (PyTorch's StepLR).
public struct StepLR: LRSchedule {
    public var stepSize: Int
    public var gamma: Double
    public init(stepSize: Int, gamma: Double = 0.1) { self.stepSize = stepSize; self.gamma = gamma }
    public func lr(step: Int, initial: Double) -> Double {
        initial * Foundation.pow(gamma, Double(step / stepSize))
    }
}

/// Linear change of the factor from startFactor to endFactor over totalSteps (PyTorch's LinearLR),
/// the usual warm-up.
public struct LinearWarmupLR: LRSchedule {
    public var startFactor: Double
    public var endFactor: Double
    public var totalSteps: Int
    public init(startFactor: Double = 1.0 / 3, endFactor: Double = 1, totalSteps: Int = 5) {
        self.startFactor = startFactor; self.endFactor = endFactor; self.totalSteps = totalSteps
    }
    public func lr(step: Int, initial: Double) -> Double {
        let t = Double(Swift.min(step, totalSteps)) / Double(Swift.max(totalSteps, 1))
        return initial * (startFactor + (endFactor - startFactor) * t)
    }
}

/// The initial rate times a factor from a closure (PyTorch's LambdaLR).
public struct LambdaLR: LRSchedule {
    public var factor: (Int) -> Double
    public init(_ factor: @escaping (Int) -> Double) { self.factor = factor }
    public func lr(step: Int, initial: Double) -> Double { initial * factor(step) }
}

public struct ConstantLR: LRSchedule {
    public init() {}
    public func lr(step: Int, initial: Double) -> Double { initial }
}

/// Schedules run one after the other, switching at the milestones (PyTorch's SequentialLR): each
/// schedule counts its steps from its own start.
public struct SequentialLR: LRSchedule {
    public var schedules: [any LRSchedule]
    public var milestones: [Int]
    public init(_ schedules: [any LRSchedule], milestones: [Int]) {
        precondition(milestones.count == schedules.count - 1, "SequentialLR needs one milestone fewer than schedules")
        self.schedules = schedules
        self.milestones = milestones
    }
    public func lr(step: Int, initial: Double) -> Double {
        var start = 0
        for (i, m) in milestones.enumerated() {
            if step < m { return schedules[i].lr(step: step - start, initial: initial) }
            start = m
        }
        return schedules[schedules.count - 1].lr(step: step - start, initial: initial)
    }
}

/// Applies a schedule to an optimizer's groups. Like PyTorch, construction sets step 0's rate and
/// each `step()` moves to the next step.
public final class LRScheduler {
    public let optimizer: Optimizer
    public let schedule: any LRSchedule
    public private(set) var lastStep = 0

    public init(_ optimizer: Optimizer, _ schedule: any LRSchedule, lastStep: Int = 0) {
        self.optimizer = optimizer
        self.schedule = schedule
        self.lastStep = lastStep
        apply()
    }

    public func step() {
        lastStep += 1
        apply()
    }

    /// Jumps to a step (resuming).
    public func set(step: Int) {
        lastStep = step
        apply()
    }

    public var currentLRs: [Double] { optimizer.paramGroups.map(\.lr) }

    private func apply() {
        for g in optimizer.paramGroups { g.lr = schedule.lr(step: lastStep, initial: g.initialLR) }
    }
}
